"""When a search spends epochs and when it stops, decided on synthetic studies (told values)."""

from __future__ import annotations

import datetime as dt

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from autotransfer import record
from autotransfer.search._policy import DecisionPruner, failing, settled, slack

DISTS = {"x": FloatDistribution(0.0, 1.0)}
START = dt.datetime(2026, 12, 1, 12, 0, 0)


def _trial(
    curve: list[float],
    *,
    cost: int,
    state: TrialState = TrialState.COMPLETE,
    at: int = 0,
    number: int = 0,
) -> FrozenTrial:
    complete = state in (TrialState.COMPLETE, TrialState.PRUNED)
    trial = create_trial(
        state=state,
        value=max(curve) if state == TrialState.COMPLETE else None,
        params={"x": 0.5},
        distributions=DISTS,
        user_attrs=record.trial_attrs(trainable_parameters=cost),
        intermediate_values=dict(enumerate(curve, 1)),
    )
    trial.number = number
    trial.datetime_complete = START + dt.timedelta(minutes=at) if complete else None
    return trial


PRUNER = DecisionPruner(tolerance=0.005, min_epochs=3, max_epochs=6)
CHOSEN = [0.60, 0.80, 0.90, 0.93, 0.95, 0.97]  # gains 0.07 from epoch 3 to its end


def _study_with(*trials: FrozenTrial) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for t in trials:
        study.add_trial(t)
    return study


@pytest.mark.parametrize(
    ("epoch3", "cost", "pruned"),
    [
        (0.75, 200, True),  # dearer and far below: cannot become the choice
        (0.95, 200, False),  # dearer but heading 0.95 + 0.07 above the best by > tolerance
        (0.83, 50, False),  # cheaper, projected 0.83 + 0.07 + slack 0.07 within tolerance of 0.97
        (0.80, 50, True),  # cheaper but projected below the best by more than the tolerance
    ],
)
def test_a_trial_is_pruned_only_when_it_cannot_change_the_decision(
    epoch3: float, cost: int, pruned: bool
) -> None:
    study = _study_with(_trial(CHOSEN, cost=100))
    running = _trial([0.5, 0.6, epoch3], cost=cost, state=TrialState.RUNNING, number=1)
    assert PRUNER.prune(study, running) is pruned


def test_nothing_is_pruned_before_a_trial_completes_or_early_or_at_the_end() -> None:
    hopeless = _trial([0.1, 0.1, 0.1], cost=10, state=TrialState.RUNNING, number=1)
    assert PRUNER.prune(_study_with(), hopeless) is False  # the first trial always completes
    study = _study_with(_trial(CHOSEN, cost=100))
    assert PRUNER.prune(study, hopeless) is True
    early = _trial([0.1, 0.1], cost=10, state=TrialState.RUNNING, number=1)
    assert PRUNER.prune(study, early) is False  # before min_epochs
    finished = _trial([0.1] * 6, cost=10, state=TrialState.RUNNING, number=1)
    assert PRUNER.prune(study, finished) is False  # its last epoch is done: it completes


def test_slack_shrinks_to_nothing_at_the_end() -> None:
    values = [slack(p) for p in (0.1, 0.3, 0.5, 0.9, 1.0)]
    assert values == sorted(values, reverse=True) and values[-1] == 0.0


def test_the_search_settles_once_the_choice_survives_patience_trials() -> None:
    good = _trial([0.90, 0.97], cost=100, at=0, number=0)
    weak = [_trial([0.5], cost=200, state=TrialState.PRUNED, at=i, number=i) for i in range(1, 4)]
    assert settled([good, *weak[:2]], patience=3, tolerance=0.005) is None
    done = settled([good, *weak], patience=3, tolerance=0.005)
    assert done is not None and (done.chosen_trial, done.unchanged, done.finished) == (0, 3, 4)
    assert done.reason().kind == record.Stop.SETTLED
    assert str(done.reason()).startswith("settled: the chosen configuration (trial #0)")


def test_a_change_of_choice_restarts_the_count_and_queued_seeds_run_first() -> None:
    trials = [
        _trial([0.90, 0.97], cost=100, at=0, number=0),
        _trial([0.5], cost=200, state=TrialState.PRUNED, at=1, number=1),
        _trial([0.92, 0.968], cost=50, at=2, number=2),  # cheaper and within tolerance
        _trial([0.5], cost=200, state=TrialState.PRUNED, at=3, number=3),
    ]
    assert settled(trials, patience=2, tolerance=0.005) is None  # one since the change
    later = _trial([0.5], cost=200, state=TrialState.PRUNED, at=4, number=4)
    done = settled([*trials, later], patience=2, tolerance=0.005)
    assert done is not None and done.chosen_trial == 2
    queued = create_trial(state=TrialState.WAITING, params={}, distributions={})
    assert settled([*trials, later, queued], patience=2, tolerance=0.005) is None


def test_a_search_gives_up_after_trials_that_all_fail() -> None:
    def failed(number: int, error: str, outcome: record.Outcome | None = None) -> FrozenTrial:
        attrs = record.trial_attrs(error=error, **({"outcome": outcome} if outcome else {}))
        trial = create_trial(
            state=TrialState.FAIL, params={"x": 0.5}, distributions=DISTS, user_attrs=attrs
        )
        trial.number = number
        trial.datetime_complete = START + dt.timedelta(minutes=number)
        return trial

    broken = [failed(i, "OSError: no such file: /data/cats") for i in range(3)]
    assert failing(broken[:2], limit=3) is None
    reason = failing(broken, limit=3)
    assert reason is not None and reason.kind == record.Stop.FAILING
    assert "last 3 trials failed" in reason.detail and "/data/cats" in reason.detail
    good = _trial([0.9], cost=1, at=10, number=3)
    assert failing([*broken, good], limit=3) is None  # a success breaks the run
    cancels = [
        failed(4 + i, "TrialCancelled: cancelled after epoch 1", record.Outcome.CANCELLED)
        for i in range(3)
    ]
    assert failing([*broken[:2], *cancels], limit=3) is None  # cancels say nothing
    # a trial stored before outcomes were recorded is read from its error
    older = [failed(7 + i, "TrialCancelled: cancelled after epoch 1") for i in range(3)]
    assert failing([*broken[:2], *older], limit=3) is None
