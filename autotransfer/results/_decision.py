"""Reading a study's decision: the engine's stored choice (``StudyInfo.decision``) and the
tables shown beside it (by freeze depth, by backbone). The rule itself is the engine's
(``autotransfer.search._decision``); nothing here recomputes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotransfer import record


@dataclass(frozen=True)
class DepthRow:
    """All trials at one freeze depth (of one backbone, when the study searches several):
    counts and the best finished score of the study's metric."""

    depth: int
    trials: int
    complete: int
    pruned: int
    failed: int
    best_score: float | None  # over COMPLETE trials: pruned ones did not get the full budget
    best_seen: float | None  # best intermediate score, pruned trials included
    backbone: str | None = None  # set when the study searches the backbone


@dataclass(frozen=True)
class BackboneRow:
    """All trials of one backbone in a study that searches several, and its running cost."""

    backbone: str
    trials: int
    complete: int
    best_score: float | None
    best_trial: int | None
    parameters: int | None
    macs: int | None
    latency_ms: float | None
    input_size: int | None


@dataclass(frozen=True)
class Decision:
    """What a study decided, as the engine stored it (``search._decision``), with the tables
    a reader shows beside it. Scores are the study's metric, ``metric``."""

    best_trial: int
    best_score: float
    chosen_trial: int
    chosen_depth: int
    chosen_score: float
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
    why: str = ""  # the rule's reason for the chosen trial, in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score(t: FrozenTrial) -> float:
    assert t.values is not None
    return t.values[0]


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
        best = max(done, key=_score, default=None)
        cost = next((i for t in at if (i := record.read_trial(t).inference)), None) or {}
        rows.append(
            BackboneRow(
                backbone=name,
                trials=len(at),
                complete=len(done),
                best_score=_score(best) if best is not None else None,
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
        seen += [_score(t) for t in done]
        rows.append(
            DepthRow(
                depth=depth,
                trials=len(at),
                complete=len(done),
                pruned=sum(t.state == TrialState.PRUNED for t in at),
                failed=sum(t.state == TrialState.FAIL for t in at),
                best_score=max((_score(t) for t in done), default=None),
                best_seen=max(seen, default=None),
                backbone=backbone or None,
            )
        )
    return rows


def decision_of(
    study: optuna.Study,
    trials: list[FrozenTrial],
    *,
    best_trial: int,
    chosen_trial: int,
    tolerance: float,
    metric: str,
    why: str,
) -> Decision:
    """The decision naming ``best_trial`` and ``chosen_trial``, with the study's tables."""
    best, chosen = study.trials[best_trial], study.trials[chosen_trial]
    pareto = sorted(t.number for t in study.best_trials) if len(study.directions) > 1 else []
    info = record.read_trial(chosen)
    return Decision(
        best_trial=best.number,
        best_score=_score(best),
        chosen_trial=chosen.number,
        chosen_depth=depth_of(chosen) or 0,
        chosen_score=_score(chosen),
        chosen_params=dict(chosen.params),
        chosen_trainable_parameters=info.trainable_parameters,
        tolerance=tolerance,
        by_depth=by_depth(trials),
        pareto_trials=pareto,
        metric=metric,
        chosen_class_report=info.class_report,
        chosen_backbone=backbone_of(chosen),
        by_backbone=by_backbone(trials),
        why=why,
    )


def read_decision(study: optuna.Study) -> Decision | None:
    """The decision the engine stored on the study, or None when it stored none (no trial
    completed yet, or a study from before decisions were stored)."""
    stored = record.read_study(study).decision
    if stored is None:
        return None
    return decision_of(
        study,
        study.get_trials(deepcopy=False),
        best_trial=stored["best_trial"],
        chosen_trial=stored["chosen_trial"],
        tolerance=stored["tolerance"],
        metric=stored["metric"],
        why=stored.get("why", ""),
    )


def metric_name(study: optuna.Study) -> str:
    """The name of the study's (first) objective: its metric, ``accuracy`` by default."""
    names = study.metric_names
    return names[0] if names and names[0] else "accuracy"
