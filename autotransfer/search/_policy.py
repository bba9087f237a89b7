"""How a search spends its epochs and when it is done, judged by the decision it will report.

The decision (``_decision.choose``) is the cheapest complete configuration within the
tolerance of the best. A trial is worth its remaining epochs only if it could still change
that decision, and a search is done once trials stop changing it:

- ``DecisionPruner`` stops a trial after an epoch when even an optimistic projection of its
  curve cannot make it the choice: neither cheaper than the chosen configuration and within
  the tolerance of the best, nor better than the best by more than the tolerance.
- ``settled`` says the search is done once nothing is queued (every seed has run) and the
  chosen configuration has not changed over the last ``patience`` finished trials;
- ``over_budget`` caps what it may spend, in training runs of a fine-tune (``run_unit``: the
  procedure's start when it fine-tunes, else the longest complete trial that trained a block;
  never a linear probe: a probe on cached features costs 1/10 to 1/20 of a fine-tune, and a
  budget counted in probes would end the search before a block is unfrozen): no trial starts
  unless a whole run still fits.

A first complete trial is needed before anything is pruned: the first trial (the
recommender's configuration) always runs to its end.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from autotransfer import record
from autotransfer.search._decision import choose, cost_of
from autotransfer.space import SearchSpec, optuna_pruner

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

# How far a configuration's accuracy after epoch e (of E) may still climb relative to the
# chosen configuration's over the remaining epochs, by e / E: the slack the projection adds.
# The maximum catch-up over every pair of oracle-grid cells (k > 0) of digits and fmnist-1k
# where the trial ended within the tolerance of a reference within two points of the best
# (`python benchmarks/calibrate_pruner.py --fit digits fmnist-1k --check fmnist-20k`);
# fmnist-20k is held out to check it. Early epochs under a cosine schedule from the full
# learning rate say little (a cell 0.79 behind after one epoch of six still caught up), so
# the packaged spaces judge trials from half their epochs.
SLACK = ((0.17, 0.79), (0.34, 0.35), (0.5, 0.07), (0.67, 0.05), (0.84, 0.012), (1.0, 0.0))


def slack(progress: float) -> float:
    """The projection's slack after ``progress`` = e / E of the epochs (step function)."""
    for upto, value in SLACK:
        if progress <= upto + 1e-9:
            return value
    return 0.0


class DecisionPruner(optuna.pruners.BasePruner):
    """Prunes a trial that cannot change the decision (see the module docstring).

    Its projected accuracy is its accuracy after epoch e, plus what the chosen configuration
    gained from epoch e to its end, plus :func:`slack`. It may change the decision if it is
    cheaper than the chosen configuration (fewer trainable parameters) and projected within
    ``tolerance`` of the best, or projected above the best by more than ``tolerance``.
    Nothing is pruned before ``min_epochs`` or while no trial has completed.
    """

    def __init__(self, *, tolerance: float, min_epochs: int, max_epochs: int) -> None:
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, but got {tolerance=}.")
        self.tolerance = tolerance
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        epoch = trial.last_step
        if epoch is None or epoch < self.min_epochs or epoch >= self.max_epochs:
            return False
        picked = choose(study.get_trials(deepcopy=False), tolerance=self.tolerance)
        if picked is None:
            return False
        best, chosen = picked
        reference = chosen.intermediate_values
        later = [value for step, value in reference.items() if step >= epoch]
        if epoch not in reference or not later:
            return False
        assert chosen.values is not None and best.values is not None
        gain = chosen.values[0] - reference[epoch]
        projected = trial.intermediate_values[epoch] + gain + slack(epoch / self.max_epochs)
        top = best.values[0]
        cheaper = cost_of(trial)[:2] < cost_of(chosen)[:2]  # to run, then to train
        if cheaper and projected >= top - self.tolerance:
            return False
        return not projected > top + self.tolerance


@dataclass(frozen=True)
class Settled:
    """Why a search is done: its chosen trial and how many finished trials left it alone."""

    chosen_trial: int
    unchanged: int
    finished: int

    def reason(self) -> record.Stopped:
        return record.Stopped(
            record.Stop.SETTLED,
            f"the chosen configuration (trial #{self.chosen_trial}) did not change over the "
            f"last {self.unchanged} of {self.finished} finished trials, and every queued "
            "configuration has run",
        )


def settled(trials: list[FrozenTrial], *, patience: int, tolerance: float) -> Settled | None:
    """The search's verdict on itself: ``Settled`` once done, else None (see module doc)."""
    if any(t.state == TrialState.WAITING for t in trials):
        return None
    finished = sorted(
        (t for t in trials if t.state in FINISHED and t.datetime_complete is not None),
        key=lambda t: (t.datetime_complete, t.number),
    )
    chosen: list[int | None] = []
    for i in range(len(finished)):
        picked = choose(finished[: i + 1], tolerance=tolerance)
        chosen.append(picked[1].number if picked else None)
    if not chosen or chosen[-1] is None:
        return None
    changed = max(i for i in range(len(chosen)) if i == 0 or chosen[i] != chosen[i - 1])
    unchanged = len(chosen) - 1 - changed
    if unchanged < patience:
        return None
    return Settled(chosen[-1], unchanged, len(finished))


def study_pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    """The study's pruner: the decision pruner, or the spec's own compiled for Optuna."""
    budget = spec.budget
    if budget.pruner.type == "decision":
        return DecisionPruner(
            tolerance=budget.tolerance, min_epochs=budget.min_epochs, max_epochs=budget.max_epochs
        )
    return optuna_pruner(spec)


@dataclass(frozen=True)
class RunUnit:
    """The budget's unit: one training run of a fine-tune, as measured on ``trial``."""

    seconds: float
    trial: int
    what: str  # which fine-tune it is, in words

    def __str__(self) -> str:
        return f"{self.seconds:.0f} s a run, {self.what} (trial #{self.trial})"


def run_unit(trials: list[FrozenTrial]) -> RunUnit | None:
    """The search's unit of cost: one run of a fine-tune (freeze depth > 0), never of a
    linear probe. The procedure's start when it is a complete fine-tune (the recommender's
    configuration: what the search is expected to end near), else the longest complete
    fine-tune (a climb from feature extraction: the unit grows as the climb unfreezes more).
    None until a fine-tune has completed: a search that has only probed has not yet measured
    what its decision costs."""
    runs = [
        (info.train_time_s, t.number, info.step)
        for t in trials
        if t.state == TrialState.COMPLETE
        and (info := record.read_trial(t)).train_time_s
        and (info.freeze_depth or 0) > 0
    ]
    if not runs:
        return None
    start = [(seconds, number) for seconds, number, step in runs if step == "start"]
    if start:
        seconds, number = start[0]
        assert seconds is not None
        return RunUnit(seconds, number, "the start's fine-tune")
    seconds, number, _ = max(runs, key=lambda r: (r[0], r[1]))
    assert seconds is not None
    return RunUnit(seconds, number, "the longest complete fine-tune")


def over_budget(
    elapsed_s: float, trials: list[FrozenTrial], *, budget_runs: float
) -> record.Stopped | None:
    """Why no trial should start: the search has spent ``elapsed_s`` of wall time, and one
    more training run (:func:`run_unit`) could take it past ``budget_runs`` runs. None
    while no fine-tune has completed or a run still fits."""
    unit = run_unit(trials)
    if unit is None or elapsed_s + unit.seconds <= budget_runs * unit.seconds:
        return None
    return record.Stopped(
        record.Stop.BUDGET,
        f"{elapsed_s:.0f} s spent of {budget_runs:g} fine-tuning runs "
        f"({budget_runs * unit.seconds:.0f} s at {unit}); one more run would not fit",
    )


def failing(trials: list[FrozenTrial], *, limit: int) -> record.Stopped | None:
    """Why a search should give up: its last ``limit`` trials to end all failed (an error
    every configuration hits, such as a dataset a worker cannot read); None otherwise.
    Trials a cancel or an ended search failed do not count."""
    ended = sorted(
        (t for t in trials if t.state.is_finished() and t.datetime_complete is not None),
        key=lambda t: (t.datetime_complete, t.number),
    )
    infos = [record.read_trial(t) for t in ended]
    spared = (record.Outcome.CANCELLED, record.Outcome.SKIPPED)
    real = [(t, info) for t, info in zip(ended, infos, strict=True) if info.ended not in spared]
    last = real[-limit:]
    if len(last) < limit or any(t.state != TrialState.FAIL for t, _ in last):
        return None
    error = (last[-1][1].error or "")[:300]
    return record.Stopped(
        record.Stop.FAILING, f"the last {limit} trials failed; the last with {error}"
    )
