"""Read-side queries over an Optuna storage, shared by the CLI and the HTTP API."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from autotransfer import record
from autotransfer.results._decision import metric_name
from autotransfer.storage import StorageURL, open_storage


@dataclass(frozen=True)
class StudySummary:
    name: str
    backbone: str | None
    dataset: str | None
    space: str | None
    requested_trials: int | None
    complete: int
    pruned: int
    failed: int  # ran and failed (a skipped configuration never ran: ``skipped``)
    running: int
    waiting: int
    best_value: float | None
    best_trial: int | None
    skipped: int = 0  # enqueued configurations the search ended before (``record.is_skipped``)
    metric: str = "accuracy"  # what ``best_value`` measures: the study's metric

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load(storage_url: str | StorageURL, study_name: str) -> optuna.Study:
    storage = open_storage(storage_url, create=False)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise KeyError(
            f"No study {study_name!r} in {storage_url}; it holds: {', '.join(names) or 'none'}."
        ) from None


def summarize(study: optuna.Study) -> StudySummary:
    trials = study.get_trials(deepcopy=False)
    skipped = sum(record.is_skipped(t) for t in trials)
    states = Counter(t.state for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    best = max(complete, key=lambda t: t.values[0]) if complete else None
    info = record.read_study(study)
    return StudySummary(
        name=study.study_name,
        backbone=info.backbone,
        dataset=info.dataset,
        space=info.space,
        requested_trials=info.requested_trials,
        complete=states[TrialState.COMPLETE],
        pruned=states[TrialState.PRUNED],
        failed=states[TrialState.FAIL] - skipped,
        running=states[TrialState.RUNNING],
        waiting=states[TrialState.WAITING],
        best_value=best.values[0] if best else None,
        best_trial=best.number if best else None,
        skipped=skipped,
        metric=metric_name(study),
    )


def list_studies(storage_url: str | StorageURL) -> list[StudySummary]:
    storage = open_storage(storage_url, create=False)
    return [
        summarize(optuna.load_study(study_name=name, storage=storage))
        for name in optuna.get_all_study_names(storage)
    ]
