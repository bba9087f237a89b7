"""The study record: the names and types of what a study stores beside Optuna's own fields.

Optuna keeps free-form user attributes on studies and trials. Every tool that reads a study
(``autotransfer studies``, the HTTP API, the audit, optuna-dashboard's users) and every
backend that writes one agrees on them here, and nowhere else: :class:`StudyInfo` and
:class:`TrialInfo` are the schema (a field's name *is* the stored attribute's name), the
``read_*`` functions give typed views of a stored study, and the ``write_*`` functions refuse
a name that is not in the schema. Renaming a field would orphan every study already stored,
so tests/test_record.py pins the names.

>>> info = TrialInfo.from_attrs({"source": "recommender", "freeze_depth": 3, "stray": 1})
>>> info.source, info.freeze_depth, info.error
('recommender', 3, None)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import optuna
from optuna.trial import FrozenTrial

RECOMMENDER = "recommender"  # the source of an enqueued seed
SAMPLER = "sampler"  # the source of a configuration the study's sampler drew
PROCEDURE = "procedure"  # a configuration the search's procedure asked for (search/_climb.py)
USER = "user"  # the first configuration, given by the user (--start)
# how the ``error`` of an enqueued configuration that an ended search never ran begins
SKIPPED = "skipped:"


class Stop(StrEnum):
    """Why a run of a search ended (``StudyInfo.stopped``; ``stop_reason`` says it in words,
    beginning with the value and a colon)."""

    SETTLED = "settled"  # the decision did not change over the last trials (stop: settled)
    BUDGET = "budget"  # one more training run would not fit the run budget
    TRIALS = "trials"  # the requested trials finished
    TIMEOUT = "timeout"  # no trial starts after the timeout
    FAILING = "failing"  # the last trials all failed
    CANCELLED = "cancelled"  # asked to stop (a resumed study goes on)


@dataclass(frozen=True)
class Stopped:
    """A run's end: its kind and the sentence that says why.

    >>> str(Stopped(Stop.TRIALS, "the 4 requested trials have finished"))
    'trials: the 4 requested trials have finished'
    """

    kind: Stop
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


class Outcome(StrEnum):
    """How a trial ended, beyond Optuna's state (``TrialInfo.outcome``): a FAIL in Optuna's
    storage is one of failed, cancelled, skipped, stale or orphaned."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"  # its own error: the configuration or the data
    CANCELLED = "cancelled"  # stopped by a cancel; a resumed study runs it again
    SKIPPED = "skipped"  # enqueued, never run: the search ended first
    STALE = "stale"  # its worker died (no heartbeat); run once more
    ORPHANED = "orphaned"  # its Ray driver stopped without it


# how trials stored before outcomes were recorded say them: the beginning of their error
_OUTCOME_PREFIXES = (
    (SKIPPED, Outcome.SKIPPED),
    ("TrialCancelled", Outcome.CANCELLED),
    ("stale heartbeat", Outcome.STALE),
    ("orphaned", Outcome.ORPHANED),
)


def _from_attrs(cls: Any, attrs: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in attrs.items() if k in names})


def _checked(cls: Any, values: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(
            f"{unknown} are not {cls.__name__} fields; add them to autotransfer/record.py "
            f"before storing them, but got {values=}."
        )
    return values


@dataclass(frozen=True)
class StudyInfo:
    """A study's own attributes: which search it holds, its seeds, its recommender, its end."""

    # identity: a resumed study must agree on these (see IDENTITY)
    backbone: str | None = None
    weights: str | None = None
    dataset: str | None = None
    dataset_fingerprint: str | None = None
    num_blocks: int | None = None
    input_size: int | None = None
    space: str | None = None
    spec: dict[str, Any] | None = None
    requested_trials: int | None = None
    # written once the first time the study is seeded (0 when it had no seeds)
    seeds_enqueued: int | None = None
    # why the study optimises its metric when the space left it open (skewed classes:
    # balanced accuracy), written with the header; None where the user or the space chose it
    metric_why: str | None = None
    # how the input size was decided (search/_resolution.py): {"chosen", "own", "why",
    # "probes": [{"input_size", "probe_accuracy", "seconds"}]}; None where the request fixed
    # it or the space searches the backbone
    size_decision: dict[str, Any] | None = None
    # where the search's procedure starts (search/_climb.py): {"params": {...}, "source":
    # "recommender" or "user"}; None for a study that samples from its first trial
    start: dict[str, Any] | None = None
    # how many processes have opened the study (a search, its worker processes, a search
    # joining it, each resume); each samples with the space's seed plus the count before it
    opens: int | None = None
    # the recommender's Recommendation.to_dict(), and how its trial ranked at the end
    recommendation: dict[str, Any] | None = None
    recommendation_audit: dict[str, Any] | None = None
    # a space that searches the backbone: each one's linear probe and inference cost, ranked
    # before any trial (search/_seeding.py rank_backbones)
    backbone_ranking: list[dict[str, Any]] | None = None
    # the Ray backend's Tune experiment folder
    ray_experiment: str | None = None
    # why the last run of the search stopped, in words: "settled: …", "budget: …",
    # "trials: …", "timeout: …" or "failing: …" (search/_policy.py, search/_session.py),
    # and its kind, a ``Stop`` value (read it as ``StudyInfo.stop``)
    stop_reason: str | None = None
    stopped: str | None = None
    # the engine's decision, written whenever it changes (search/_decision.py): {"best_trial",
    # "best_score", "chosen_trial", "chosen_score", "tolerance", "metric", "why"}
    decision: dict[str, Any] | None = None
    # the chosen trial's kept weights: {"trial", "artifact_id", "file", "score", "metric"}
    # (studies kept before scores were named by their metric have "accuracy" for "score")
    model: dict[str, Any] | None = None
    # the kept model scored once on the test split the search never saw: {"trial", "metric",
    # "score", "accuracy", "metrics", "images", "class_report", "source"}, or {"error"}
    test: dict[str, Any] | None = None

    IDENTITY = ("backbone", "dataset_fingerprint", "space", "input_size")

    @property
    def stop(self) -> Stop | None:
        """Why the last run ended, as a ``Stop`` (None while none ended)."""
        if self.stopped is not None:
            return Stop(self.stopped)
        if self.stop_reason:  # a study stored before the kind was recorded
            return Stop(self.stop_reason.partition(":")[0])
        return None

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> StudyInfo:
        return _from_attrs(cls, attrs)

    def to_attrs(self) -> dict[str, Any]:
        """The fields that are set, as user attributes."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def mismatch(self, other: StudyInfo) -> tuple[str, Any, Any] | None:
        """The first identity field on which ``other`` (stored) differs: (name, other's,
        this one's), or None when both describe the same search."""
        for key in self.IDENTITY:
            if getattr(other, key) != getattr(self, key):
                return key, getattr(other, key), getattr(self, key)
        return None


@dataclass(frozen=True)
class TrialInfo:
    """A trial's attributes, the same whichever backend ran it."""

    # where the configuration came from: RECOMMENDER (an enqueued seed) or SAMPLER; a retried
    # trial keeps its original's source
    source: str | None = None
    # the procedure's step that asked for it: "baseline", "start", "climb" or "refine"
    step: str | None = None
    backbone: str | None = None
    weights: str | None = None
    freeze_depth: int | None = None
    num_blocks: int | None = None
    input_size: int | None = None
    dataset_fingerprint: str | None = None
    worker: str | None = None  # host:pid of the process that trained it
    # what its network costs to run once trained: {"parameters", "macs", "latency_ms",
    # "input_size", "device"} (backbones.InferenceCost), measured on the search's device
    inference: dict[str, Any] | None = None
    # written after every epoch
    epochs_run: int | None = None
    train_time_s: float | None = None
    trainable_parameters: int | None = None
    # the whole training configuration it ran with (TrialConfig.model_dump(mode="json")),
    # written when it starts: what the API's /config serves for the chosen trial
    config: dict[str, Any] | None = None
    # written when it completes
    best_epoch: int | None = None
    final_val_accuracy: float | None = None
    # the accuracy at the best epoch (the trial's value is the study's metric, which may be
    # another), and that epoch's per-class precision, recall, support and confusion matrix
    best_val_accuracy: float | None = None
    class_report: dict[str, Any] | None = None
    # written when it ends: an ``Outcome`` value (read it as ``TrialInfo.ended``)
    outcome: str | None = None
    # written when it fails: "<ExceptionType>: message", and the traceback's tail
    error: str | None = None
    traceback: str | None = None
    # the Ray backend only
    ray_node: str | None = None
    ray_trial_id: str | None = None
    # the trial this one re-runs (a retried trial)
    retry_of: int | None = None

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TrialInfo:
        return _from_attrs(cls, attrs)

    @property
    def ended(self) -> Outcome | None:
        """How the trial ended, as an ``Outcome`` (None while it runs). A trial stored before
        outcomes were recorded is read from its error's first words."""
        if self.outcome is not None:
            return Outcome(self.outcome)
        for prefix, outcome in _OUTCOME_PREFIXES:
            if self.error and self.error.startswith(prefix):
                return outcome
        return Outcome.FAILED if self.error else None


# what every trial that ran an epoch records, whichever backend ran it; a completed trial
# adds TRIAL_ON_COMPLETE, a Ray trial TRIAL_ON_RAY (tests/test_backend_contract.py checks it)
TRIAL_ON_EPOCH = (
    "source",
    "backbone",
    "weights",
    "freeze_depth",
    "num_blocks",
    "input_size",
    "dataset_fingerprint",
    "worker",
    "inference",
    "config",
    "epochs_run",
    "train_time_s",
    "trainable_parameters",
)
TRIAL_ON_COMPLETE = ("best_epoch", "final_val_accuracy", "best_val_accuracy", "class_report")
TRIAL_ON_END = ("outcome",)  # every trial that ended, however it ended
TRIAL_ON_RAY = ("ray_node", "ray_trial_id")
STUDY_FIELDS = tuple(f.name for f in dataclasses.fields(StudyInfo))
TRIAL_FIELDS = tuple(f.name for f in dataclasses.fields(TrialInfo))
# what a reviewer sees of a trial in the API (the traceback and Ray ids stay in the storage)
TRIAL_SHOWN = (
    "source",
    "step",
    "backbone",
    "freeze_depth",
    "inference",
    "epochs_run",
    "train_time_s",
    "trainable_parameters",
    "best_epoch",
    "final_val_accuracy",
    "best_val_accuracy",
    "class_report",
    "outcome",
    "error",
    "retry_of",
)


def read_study(study: optuna.Study) -> StudyInfo:
    return StudyInfo.from_attrs(study.user_attrs)


def read_trial(trial: FrozenTrial) -> TrialInfo:
    return TrialInfo.from_attrs(trial.user_attrs)


def write_study(study: optuna.Study, **values: Any) -> None:
    """Set study attributes; each keyword must be a :class:`StudyInfo` field."""
    for key, value in _checked(StudyInfo, values).items():
        study.set_user_attr(key, value)


def trial_attrs(**values: Any) -> dict[str, Any]:
    """Trial attributes as a dict (for ``enqueue_trial(user_attrs=…)``), names checked."""
    return _checked(TrialInfo, values)


def write_trial(
    storage: optuna.storages.BaseStorage, trial_id: int, **values: Any
) -> dict[str, Any]:
    """Set trial attributes by the storage's trial id; each keyword a :class:`TrialInfo` field.

    Works on any trial the storage holds, also one this process did not ask for (the Ray
    backend's driver records what its workers report). Returns what was written.
    """
    for key, value in _checked(TrialInfo, values).items():
        storage.set_trial_user_attr(trial_id, key, value)
    return values


def is_skipped(trial: FrozenTrial) -> bool:
    """Whether the trial never ran: an enqueued configuration the search ended before (it is
    FAIL in Optuna's storage, with an ``error`` that says so, but it is no failure)."""
    return (
        trial.state == optuna.trial.TrialState.FAIL and read_trial(trial).ended == Outcome.SKIPPED
    )


def is_seeded(trial: FrozenTrial) -> bool:
    """Whether the trial is one of the recommender's seeds."""
    return read_trial(trial).source == RECOMMENDER
