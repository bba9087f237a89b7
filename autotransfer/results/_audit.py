"""The recommender's audit trail: how the recommended trial ranked once the study ended."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotransfer import record
from autotransfer.results._decision import metric_name


def _score(t: FrozenTrial) -> float | None:
    if t.state == TrialState.COMPLETE and t.values:
        return float(t.values[0])
    return None


def _earliest_on_ties(item: tuple[float, int]) -> tuple[float, int]:
    return item[0], -item[1]


def audit_recommendation(study: optuna.Study) -> dict[str, Any] | None:
    """Rank and score gap (the study's metric) of the recommended trial among the study's
    completed trials.

    The recommended trial is the first trial marked ``source="recommender"`` (seeds are
    enqueued in order, the recommendation first). ``rank`` is 1 + the number of completed
    trials with a strictly higher score, ``None`` when the recommended trial did not
    complete (pruned or failed: then ``state`` says which). ``best_seed_*`` do the same for
    the best of all the recommender's seeds (the recommendation and its neighbours).
    Returns ``None`` for a study without recommender seeds.
    """
    trials = study.get_trials(deepcopy=False)
    seeded = sorted((t for t in trials if record.is_seeded(t)), key=lambda t: t.number)
    finished = [(score, t.number) for t in trials if (score := _score(t)) is not None]
    if not seeded or not finished:
        return None
    best_score, best_trial = max(finished, key=_earliest_on_ties)
    recommended = seeded[0]
    score = _score(recommended)
    seed_scores = [(s, t.number) for t in seeded if (s := _score(t)) is not None]
    best_seed = max(seed_scores, key=_earliest_on_ties) if seed_scores else None

    def rank(value: float | None) -> int | None:
        return None if value is None else 1 + sum(a > value for a, _ in finished)

    return {
        "recommended_trial": recommended.number,
        "state": recommended.state.name,
        "rank": rank(score),
        "of": len(finished),
        "metric": metric_name(study),
        "recommended_score": score,
        "best_trial": best_trial,
        "best_score": best_score,
        "gap": None if score is None else round(best_score - score, 6),
        "best_seed_trial": best_seed[1] if best_seed else None,
        "best_seed_rank": rank(best_seed[0]) if best_seed else None,
        "best_seed_gap": round(best_score - best_seed[0], 6) if best_seed else None,
    }


def record_audit(study: optuna.Study) -> dict[str, Any] | None:
    """Compute the audit and store it on the study (``StudyInfo.recommendation_audit``)."""
    audit = audit_recommendation(study)
    if audit is not None:
        record.write_study(study, recommendation_audit=audit)
    return audit
