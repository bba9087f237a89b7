"""The decision: cheapest configuration within tolerance of the best, and the Pareto front."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from autotransfer import record
from autotransfer.results import read_decision
from autotransfer.search import decide, record_decision, study_decision

DISTS = {"freeze_depth": IntDistribution(0, 17), "base_lr": FloatDistribution(1e-3, 1.0)}


def _add(
    study: optuna.Study,
    depth: int,
    acc: float | list[float],
    params: int,
    seconds: float,
    state: TrialState = TrialState.COMPLETE,
) -> None:
    values = acc if isinstance(acc, list) else [acc]
    study.add_trial(
        create_trial(
            state=state,
            values=values if state == TrialState.COMPLETE else None,
            params={"freeze_depth": depth, "base_lr": 0.01},
            distributions=DISTS,
            user_attrs=record.trial_attrs(
                freeze_depth=depth, trainable_parameters=params, train_time_s=seconds
            ),
            intermediate_values={1: values[0]},
        )
    )


def test_cheapest_within_tolerance_wins() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, 17, 0.950, 3_000_000, 90.0)  # best
    _add(study, 3, 0.947, 900_000, 30.0)  # within 0.5 points, fewer parameters → chosen
    _add(study, 0, 0.930, 12_000, 10.0)  # cheapest but 2 points worse
    _add(study, 1, 0.990, 50_000, 5.0, state=TrialState.PRUNED)  # pruned: not a candidate
    d = decide(study, tolerance=0.005)
    assert d is not None
    assert d.best_trial == 0 and d.best_score == pytest.approx(0.95)
    assert d.chosen_trial == 1 and d.chosen_depth == 3
    assert decide(study, tolerance=0.03).chosen_depth == 0  # type: ignore[union-attr]
    assert decide(study, tolerance=0.0).chosen_depth == 17  # type: ignore[union-attr]
    rows = {r.depth: r for r in d.by_depth}
    assert rows[1].pruned == 1 and rows[1].best_score is None and rows[1].best_seen == 0.99
    assert rows[17].best_score == pytest.approx(0.95)


def test_no_completed_trial_means_no_decision() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, 2, 0.5, 10, 1.0, state=TrialState.PRUNED)
    assert decide(study, tolerance=0.005) is None
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        decide(study, tolerance=-1)


def test_pareto_front_in_multi_objective_studies() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    _add(study, 17, [0.95, 90.0], 3_000_000, 90.0)
    _add(study, 0, [0.90, 10.0], 12_000, 10.0)
    _add(study, 5, [0.89, 40.0], 500_000, 40.0)  # dominated
    d = decide(study, tolerance=0.005)
    assert d is not None and d.pareto_trials == [0, 1]


def test_the_stored_decision_is_what_every_reader_gets() -> None:
    """The engine stores its decision at the space's tolerance; readers read it, and only a
    reader that names another tolerance gets another choice."""
    study = optuna.create_study(direction="maximize")
    record.write_study(study, spec={"name": "t", "parameters": {}, "budget": {"tolerance": 0.02}})
    _add(study, 17, 0.950, 3_000_000, 90.0)
    _add(study, 3, 0.940, 900_000, 30.0)  # within 2 points, not within half a point
    assert read_decision(study) is None
    # a study stored before decisions were: decided at its own space's tolerance
    assert study_decision(study).chosen_trial == 1  # type: ignore[union-attr]
    stored = record_decision(study, tolerance=0.02)
    assert stored is not None and stored["chosen_trial"] == 1 and stored["tolerance"] == 0.02
    assert "cheapest within 2.0 points" in stored["why"] and "trainable parameters" in stored["why"]
    decision = read_decision(study)
    assert decision is not None and (decision.chosen_trial, decision.best_trial) == (1, 0)
    assert decision.tolerance == 0.02 and decision.why == stored["why"]
    assert study_decision(study).chosen_trial == 1  # type: ignore[union-attr]
    assert study_decision(study, tolerance=0.005).chosen_trial == 0  # type: ignore[union-attr]
    # the record is rewritten only when the decision changes
    _add(study, 0, 0.5, 12_000, 10.0)
    assert record_decision(study, tolerance=0.02) == stored
