"""What a search shows while it runs, and the plots it writes, checked without training."""

from __future__ import annotations

import io

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState
from rich.console import Console

from autotransfer import record
from autotransfer.cli._progress import TrialLines, status_table
from autotransfer.results import curves_figure, depth_figure, summarize
from autotransfer.search import decide

SPACE = {"freeze_depth": IntDistribution(0, 17), "base_lr": FloatDistribution(1e-4, 1.0)}


def _attrs(trial: optuna.Trial, **values: object) -> None:
    for key, value in record.trial_attrs(**values).items():
        trial.set_user_attr(key, value)


def _study() -> optuna.Study:
    """Depths 0, 1, 2 over two epochs: one complete, one pruned, one failed, one running."""
    study = optuna.create_study(direction="maximize")
    for k in (0, 1, 2, 1):
        study.enqueue_trial({"freeze_depth": k, "base_lr": 0.01})
    outcomes = [(TrialState.COMPLETE, 2), (TrialState.PRUNED, 1), (TrialState.FAIL, 0)]
    for state, epochs in outcomes:
        trial = study.ask(SPACE)
        for epoch in range(1, epochs + 1):
            trial.report(0.5 + 0.1 * epoch, epoch)
            _attrs(trial, epochs_run=epoch)
        _attrs(trial, train_time_s=1.5 * epochs)
        if state == TrialState.FAIL:
            _attrs(trial, error="RuntimeError: out of memory\nmore")
        study.tell(trial, 0.7 if state == TrialState.COMPLETE else None, state=state)
    running = study.ask(SPACE)
    running.report(0.55, 1)
    _attrs(running, epochs_run=1)
    return study


def _text(table: object) -> str:
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_the_running_trial_shows_its_epoch_of_the_total() -> None:
    text = _text(status_table("s", _study(), epochs=6))
    assert "#3 k=1 epoch 1/6" in text
    assert "0.7000 (#0)" in text  # the best so far


def test_finished_trials_become_one_line_each_and_only_once() -> None:
    study, lines = _study(), TrialLines(epochs=2)
    assert lines.new(study) == [
        "trial #0: k=0 complete, accuracy 0.7000 (2/2 epochs, 3.0 s)",
        "trial #1: k=1 pruned, best accuracy 0.6000 (1/2 epochs, 1.5 s)",
        "trial #2: k=2 fail, no epoch finished (0/2 epochs, 0.0 s): RuntimeError: out of memory",
    ]
    assert lines.new(study) == []


@pytest.mark.parametrize("which", ["depth", "curves"])
def test_integer_axes_have_integer_ticks(which: str) -> None:
    study = _study()
    if which == "depth":
        fig = depth_figure(study, decide(study, tolerance=0.005))
        axes = [fig.axes[0].xaxis]  # freeze depth
    else:
        fig = curves_figure(study)
        axes = [fig.axes[0].xaxis, fig.axes[1].yaxis]  # epoch, and the depth colour bar
    for axis in axes:
        ticks = axis.get_ticklocs()
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_a_queued_configuration_the_search_never_ran_is_skipped_not_failed() -> None:
    study = _study()
    study.enqueue_trial({"freeze_depth": 5, "base_lr": 0.01})
    never = study.ask(SPACE)
    _attrs(never, error=f"{record.SKIPPED} the search ended before this enqueued configuration ran")
    study.tell(never, state=TrialState.FAIL)
    s = summarize(study)
    assert (s.failed, s.skipped) == (1, 1)  # the out-of-memory trial failed; this one never ran
    assert TrialLines(epochs=2).new(study)[-1] == (
        f"trial #{never.number}: k=5 skipped: the search ended before this enqueued "
        "configuration ran"
    )
    decision = decide(study, tolerance=0.005)
    assert decision is not None and 5 not in [row.depth for row in decision.by_depth]
