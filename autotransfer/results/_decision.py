"""The decision a study ends with: the best trial and the cheapest depth that is as good."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotransfer import record

DEFAULT_TOLERANCE = 0.005  # half a point of accuracy


@dataclass(frozen=True)
class DepthRow:
    """All trials at one freeze depth (of one backbone, when the study searches several):
    counts and the best finished accuracy."""

    depth: int
    trials: int
    complete: int
    pruned: int
    failed: int
    best_accuracy: float | None  # over COMPLETE trials: pruned ones did not get the full budget
    best_seen: float | None  # best intermediate accuracy, pruned trials included
    backbone: str | None = None  # set when the study searches the backbone


@dataclass(frozen=True)
class BackboneRow:
    """All trials of one backbone in a study that searches several, and its running cost."""

    backbone: str
    trials: int
    complete: int
    best_accuracy: float | None
    best_trial: int | None
    parameters: int | None
    macs: int | None
    latency_ms: float | None
    input_size: int | None


@dataclass(frozen=True)
class Decision:
    """What a study decided. The ``*_accuracy`` fields (here and in ``DepthRow``) hold the
    study's metric, ``metric``: accuracy unless the space's objective names another (the
    names stay for the readers that already use them)."""

    best_trial: int
    best_accuracy: float
    chosen_trial: int
    chosen_depth: int
    chosen_accuracy: float
    chosen_params: dict[str, Any]
    chosen_trainable_parameters: int | None
    tolerance: float
    by_depth: list[DepthRow] = field(default_factory=list)
    pareto_trials: list[int] = field(default_factory=list)
    metric: str = "accuracy"
    # the chosen trial's per-class precision, recall, support and confusion matrix
    chosen_class_report: dict[str, Any] | None = None
    # a study that searches the backbone: the chosen one, and every one's best and cost
    chosen_backbone: str | None = None
    by_backbone: list[BackboneRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _accuracy(t: FrozenTrial) -> float:
    assert t.values is not None
    return t.values[0]


def _known(value: float | None) -> float:
    return float(value) if value is not None else float("inf")


def cost_of(t: FrozenTrial) -> tuple[float, float, float]:
    """What "cheapest" compares: multiply-adds to run the network once trained (which only
    differ between backbones), then trainable parameters, then training seconds."""
    info = record.read_trial(t)
    macs = (info.inference or {}).get("macs")
    return _known(macs), _known(info.trainable_parameters), _known(info.train_time_s)


def backbone_of(t: FrozenTrial) -> str | None:
    value = t.params.get("backbone")
    return str(value) if value is not None else None


def by_backbone(trials: list[FrozenTrial]) -> list[BackboneRow]:
    """One row per backbone the trials searched (none when they searched one)."""
    trials = [t for t in trials if not record.is_skipped(t)]
    names = sorted({b for t in trials if (b := backbone_of(t)) is not None})
    rows = []
    for name in names:
        at = [t for t in trials if backbone_of(t) == name]
        done = [t for t in at if t.state == TrialState.COMPLETE and t.values]
        best = max(done, key=_accuracy, default=None)
        cost = next((i for t in at if (i := record.read_trial(t).inference)), None) or {}
        rows.append(
            BackboneRow(
                backbone=name,
                trials=len(at),
                complete=len(done),
                best_accuracy=_accuracy(best) if best is not None else None,
                best_trial=best.number if best is not None else None,
                parameters=cost.get("parameters"),
                macs=cost.get("macs"),
                latency_ms=cost.get("latency_ms"),
                input_size=cost.get("input_size"),
            )
        )
    return rows


def depth_of(t: FrozenTrial) -> int | None:
    value = record.read_trial(t).freeze_depth
    if value is None:
        value = t.params.get("freeze_depth")
    return int(value) if value is not None else None


def by_depth(trials: list[FrozenTrial]) -> list[DepthRow]:
    rows = []
    trials = [t for t in trials if not record.is_skipped(t)]  # never ran at any depth
    keys = {(backbone_of(t) or "", d) for t in trials if (d := depth_of(t)) is not None}
    for backbone, depth in sorted(keys):
        at = [t for t in trials if depth_of(t) == depth and (backbone_of(t) or "") == backbone]
        done = [t for t in at if t.state == TrialState.COMPLETE]
        seen = [v for t in at for v in t.intermediate_values.values()]
        seen += [_accuracy(t) for t in done]
        rows.append(
            DepthRow(
                depth=depth,
                trials=len(at),
                complete=len(done),
                pruned=sum(t.state == TrialState.PRUNED for t in at),
                failed=sum(t.state == TrialState.FAIL for t in at),
                best_accuracy=max((_accuracy(t) for t in done), default=None),
                best_seen=max(seen, default=None),
                backbone=backbone or None,
            )
        )
    return rows


def choose(
    trials: list[FrozenTrial], *, tolerance: float = DEFAULT_TOLERANCE
) -> tuple[FrozenTrial, FrozenTrial] | None:
    """``(best, chosen)`` among the COMPLETE trials of ``trials`` (see :func:`decide`)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if not complete:
        return None
    best = max(complete, key=_accuracy)
    close = [t for t in complete if _accuracy(t) >= _accuracy(best) - tolerance - 1e-12]
    return best, min(close, key=lambda t: (*cost_of(t), -_accuracy(t), t.number))


def decide(study: optuna.Study, *, tolerance: float = DEFAULT_TOLERANCE) -> Decision | None:
    """Best trial, and the cheapest COMPLETE trial within ``tolerance`` of its accuracy.

    Cheapest means fewest multiply-adds to run (across backbones: the smaller network when
    it is as accurate), then fewest trainable parameters, then least training time: when a
    frozen backbone is as accurate as a fine-tuned one, the frozen one is cheaper to train,
    to store (one shared backbone, many heads) and less likely to have overfit. Returns
    None while no trial has completed.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, but got {tolerance=}.")
    trials = study.get_trials(deepcopy=False)
    picked = choose(trials, tolerance=tolerance)
    if picked is None:
        return None
    best, chosen = picked
    pareto = sorted(t.number for t in study.best_trials) if len(study.directions) > 1 else []
    return Decision(
        best_trial=best.number,
        best_accuracy=_accuracy(best),
        chosen_trial=chosen.number,
        chosen_depth=depth_of(chosen) or 0,
        chosen_accuracy=_accuracy(chosen),
        chosen_params=dict(chosen.params),
        chosen_trainable_parameters=record.read_trial(chosen).trainable_parameters,
        tolerance=tolerance,
        by_depth=by_depth(trials),
        pareto_trials=pareto,
        metric=metric_name(study),
        chosen_class_report=record.read_trial(chosen).class_report,
        chosen_backbone=backbone_of(chosen),
        by_backbone=by_backbone(trials),
    )


def metric_name(study: optuna.Study) -> str:
    """The name of the study's (first) objective: its metric, ``accuracy`` by default."""
    names = study.metric_names
    return names[0] if names and names[0] else "accuracy"
