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
    """All trials at one freeze depth: counts and the best finished accuracy."""

    depth: int
    trials: int
    complete: int
    pruned: int
    failed: int
    best_accuracy: float | None  # over COMPLETE trials: pruned ones did not get the full budget
    best_seen: float | None  # best intermediate accuracy, pruned trials included


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _accuracy(t: FrozenTrial) -> float:
    assert t.values is not None
    return t.values[0]


def cost_of(t: FrozenTrial) -> tuple[float, float]:
    """What "cheapest" compares: trainable parameters, then training seconds."""
    info = record.read_trial(t)
    params, seconds = info.trainable_parameters, info.train_time_s
    return (
        float(params) if params is not None else float("inf"),
        float(seconds) if seconds is not None else float("inf"),
    )


def depth_of(t: FrozenTrial) -> int | None:
    value = record.read_trial(t).freeze_depth
    if value is None:
        value = t.params.get("freeze_depth")
    return int(value) if value is not None else None


def by_depth(trials: list[FrozenTrial]) -> list[DepthRow]:
    rows = []
    trials = [t for t in trials if not record.is_skipped(t)]  # never ran at any depth
    depths = sorted({d for t in trials if (d := depth_of(t)) is not None})
    for depth in depths:
        at = [t for t in trials if depth_of(t) == depth]
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

    Cheapest means fewest trainable parameters, then least training time: when a frozen
    backbone is as accurate as a fine-tuned one, the frozen one is cheaper to train, to
    store (one shared backbone, many heads) and less likely to have overfit. Returns None
    while no trial has completed.
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
    )


def metric_name(study: optuna.Study) -> str:
    """The name of the study's (first) objective: its metric, ``accuracy`` by default."""
    names = study.metric_names
    return names[0] if names and names[0] else "accuracy"
