"""The decision rule, owned by the engine, and the decision it stores on the study.

A study decides two things: its **best** trial (the highest score of the study's metric) and
its **chosen** one, the cheapest COMPLETE trial within the space's ``tolerance`` of the best.
Cheapest means fewest multiply-adds to run the trained network (across backbones: the
smaller network when it is as good), then fewest trainable parameters, then least training
time: when a frozen backbone is as good as a fine-tuned one, it is cheaper to train, to store
(one shared backbone, many heads) and less likely to have overfit.

The engine computes the decision after every trial that can change it and writes it to the
study record (``StudyInfo.decision``) under the study lock, so every reader (``studies
show``, the HTTP API, ``--export``, the kept model, the audit) reads the same choice with the
same tolerance instead of recomputing it with its own. The decision pruner and the stop rule
(``_policy.py``) judge trials by the same :func:`choose`.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotransfer import record
from autotransfer.results import Decision, decision_of, metric_name, read_decision
from autotransfer.space import Budget, SearchSpec


def _score(t: FrozenTrial) -> float:
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


def choose(
    trials: list[FrozenTrial], *, tolerance: float
) -> tuple[FrozenTrial, FrozenTrial] | None:
    """``(best, chosen)`` among the COMPLETE trials of ``trials``; None before one completed."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, but got {tolerance=}.")
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if not complete:
        return None
    best = max(complete, key=_score)
    close = [t for t in complete if _score(t) >= _score(best) - tolerance - 1e-12]
    return best, min(close, key=lambda t: (*cost_of(t), -_score(t), t.number))


def _why(best: FrozenTrial, chosen: FrozenTrial, tolerance: float, metric: str) -> str:
    within = f"within {tolerance * 100:.1f} points of the best"
    if chosen.number == best.number:
        score = f"{metric} {_score(best):.4f}"
        return f"trial #{best.number} is the best ({score}) and the cheapest {within}"
    macs, trainable, seconds = cost_of(chosen)
    best_macs, best_trainable, _ = cost_of(best)
    if macs < best_macs:
        cheaper = f"{macs:,.0f} multiply-adds to run against {best_macs:,.0f}"
    elif trainable < best_trainable:
        cheaper = f"{trainable:,.0f} trainable parameters against {best_trainable:,.0f}"
    else:
        cheaper = f"{seconds:.1f} s of training"
    return (
        f"trial #{chosen.number} ({metric} {_score(chosen):.4f}) is the cheapest {within}, "
        f"trial #{best.number} ({metric} {_score(best):.4f}): {cheaper}"
    )


def decide(study: optuna.Study, *, tolerance: float) -> Decision | None:
    """The decision at ``tolerance``, computed now (what the engine stores; a reader asking
    "what if the tolerance were …" gets the same rule). None while no trial has completed."""
    trials = study.get_trials(deepcopy=False)
    picked = choose(trials, tolerance=tolerance)
    if picked is None:
        return None
    best, chosen = picked
    metric = metric_name(study)
    return decision_of(
        study,
        trials,
        best_trial=best.number,
        chosen_trial=chosen.number,
        tolerance=tolerance,
        metric=metric,
        why=_why(best, chosen, tolerance, metric),
    )


def record_decision(study: optuna.Study, *, tolerance: float) -> dict[str, Any] | None:
    """Compute the decision and store it on the study when it changed (call under the study
    lock: two workers finishing at once must not write an older decision last)."""
    decision = decide(study, tolerance=tolerance)
    if decision is None:
        return None
    stored = {
        "best_trial": decision.best_trial,
        "best_score": decision.best_score,
        "chosen_trial": decision.chosen_trial,
        "chosen_score": decision.chosen_score,
        "tolerance": tolerance,
        "metric": decision.metric,
        "why": decision.why,
    }
    if record.read_study(study).decision != stored:
        record.write_study(study, decision=stored)
    return stored


def study_tolerance(study: optuna.Study) -> float:
    """The tolerance of the study's own space (0.005 for a study without one)."""
    spec = record.read_study(study).spec
    if spec is None:
        return Budget().tolerance
    return SearchSpec.model_validate(spec).budget.tolerance


def study_decision(study: optuna.Study, *, tolerance: float | None = None) -> Decision | None:
    """What the study decided: the engine's stored decision; with ``tolerance`` given, the
    decision at that tolerance instead (a reader's "what if"). A study stored before the
    engine wrote decisions is decided now at its own space's tolerance."""
    if tolerance is None:
        stored = read_decision(study)
        if stored is not None:
            return stored
        tolerance = study_tolerance(study)
    return decide(study, tolerance=tolerance)
