"""A running search on stderr: a live table on a terminal, one line per finished trial
elsewhere (a log file, CI, ``nohup``), where a redrawn table would show nothing at all."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.live import Live
from rich.table import Table

from autotransfer import record
from autotransfer.results import backbone_of, depth_of, metric_name, summarize

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _epochs_done(t: FrozenTrial) -> int:
    done = record.read_trial(t).epochs_run
    return done if done is not None else len(t.intermediate_values)


def status_table(name: str, study: optuna.Study | None, epochs: int) -> Table:
    """Trials by state, the best so far, and each running trial's depth and epoch of ``epochs``."""
    table = Table(
        "finished",
        "pruned",
        "failed",
        "running",
        "best so far" if study is None else f"best {metric_name(study)} so far",
        "current trial",
        title=f"study {name}",
        title_justify="left",
    )
    if study is None:
        return table
    s = summarize(study)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    current = ", ".join(
        f"#{t.number} {_where(t)} epoch {_epochs_done(t)}/{epochs}" for t in running
    )
    best = f"{s.best_value:.4f} (#{s.best_trial})" if s.best_value is not None else "-"
    total = f"{s.complete + s.pruned}/{s.requested_trials or '?'}"
    table.add_row(total, str(s.pruned), str(s.failed), str(s.running), best, current or "-")
    return table


def _where(t: FrozenTrial) -> str:
    """``k=5``, or ``efficientnet_lite1 k=15`` in a study that searches the backbone."""
    depth = depth_of(t)
    backbone = backbone_of(t)
    return f"{backbone + ' ' if backbone else ''}k={depth if depth is not None else '?'}"


def trial_line(t: FrozenTrial, epochs: int, metric: str = "accuracy") -> str:
    """``trial #3: k=5 complete, accuracy 0.9512 (6/6 epochs, 12.3 s)``, the score named by
    the study's ``metric``; a failure says why."""
    info = record.read_trial(t)
    if record.is_skipped(t):
        return f"trial #{t.number}: {_where(t)} {info.error}"
    if t.state == TrialState.COMPLETE and t.values:
        outcome = f"{metric} {t.values[0]:.4f}"
    elif t.intermediate_values:
        outcome = f"best {metric} {max(t.intermediate_values.values()):.4f}"
    else:
        outcome = "no epoch finished"
    seconds = info.train_time_s
    if seconds is None and t.duration is not None:
        seconds = t.duration.total_seconds()
    took = f", {seconds:.1f} s" if seconds is not None else ""
    line = (
        f"trial #{t.number}: {_where(t)} {t.state.name.lower()}, "
        f"{outcome} ({_epochs_done(t)}/{epochs} epochs{took})"
    )
    if t.state == TrialState.FAIL and info.error:
        line += f": {info.error.splitlines()[0]}"
    return line


class TrialLines:
    """The lines of trials that finished since the last call, each trial once, in order."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.seen: set[int] = set()

    def new(self, study: optuna.Study | None) -> list[str]:
        if study is None:
            return []
        fresh = [
            t
            for t in study.get_trials(deepcopy=False, states=_FINISHED)
            if t.number not in self.seen
        ]
        self.seen.update(t.number for t in fresh)
        metric = metric_name(study)
        ordered = sorted(fresh, key=lambda t: t.number)
        return [trial_line(t, self.epochs, metric) for t in ordered]


@contextlib.contextmanager
def show_progress(
    console: Console,
    storage: BaseStorage,
    name: str,
    *,
    epochs: int,
    interval: float = 2.0,
) -> Iterator[None]:
    """Show the study ``name`` in ``storage`` while the body runs, every ``interval`` s."""

    def load() -> optuna.Study | None:
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # not created yet
            return None

    live: Live | None = None
    lines = TrialLines(epochs)

    def show() -> None:
        study = load()
        if live is not None:
            live.update(status_table(name, study, epochs))
        else:
            for line in lines.new(study):
                console.print(line, highlight=False, soft_wrap=True)

    done = threading.Event()

    def poll() -> None:
        while not done.wait(interval):
            # the display is best effort: a storage hiccup skips one refresh, and the
            # search itself reports any real failure
            with contextlib.suppress(Exception):
                show()

    with contextlib.ExitStack() as stack:
        if console.is_interactive:
            live = stack.enter_context(
                Live(status_table(name, None, epochs), console=console, refresh_per_second=1)
            )
        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            with contextlib.suppress(Exception):
                show()
