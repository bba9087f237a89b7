"""The ask/tell loop one worker process runs: exact trial counts, heartbeats, failures as data."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from autotransfer.search._storage import study_lock

log = logging.getLogger(__name__)

TrialFunction = Callable[[optuna.Trial], float | Sequence[float]]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@contextlib.contextmanager
def _own_heartbeat() -> Iterator[None]:
    # Optuna warns that heartbeats belong to Study.optimize; this loop beats itself (below).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        yield


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, trial_id: int) -> Iterator[None]:
    """Record heartbeats while a trial runs, so a killed worker's trial is detected as stale.

    Duck-typed: Optuna wraps RDB storages in a caching layer that forwards heartbeats.
    """
    get_interval = getattr(storage, "get_heartbeat_interval", None)
    interval = get_interval() if get_interval is not None else None
    if not interval:
        yield
        return
    record = storage.record_heartbeat  # type: ignore[attr-defined]
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            record(trial_id)

    record(trial_id)
    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_one(study: optuna.Study, trial: optuna.Trial, objective: TrialFunction) -> TrialState:
    """Run one trial and tell the study how it ended; only interrupts propagate.

    Pruned trials become PRUNED; any other exception becomes FAIL with its type, message and
    traceback in the trial's user attributes, and the study goes on.
    """
    with heartbeat(study._storage, trial._trial_id):
        try:
            values = objective(trial)
        except optuna.TrialPruned:
            with _own_heartbeat():
                study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
        except Exception as exc:  # a failing trial is data, never fatal to its study
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            with _own_heartbeat():
                study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL
        except BaseException:
            trial.set_user_attr("error", "interrupted")
            with _own_heartbeat():
                study.tell(trial, state=TrialState.FAIL)
            raise
    with _own_heartbeat():
        frozen = study.tell(trial, values)
    return frozen.state


def run_worker(
    study: optuna.Study,
    objective: TrialFunction,
    *,
    storage_url: str,
    trials: int,
    timeout_s: float | None = None,
    poll_s: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Run trials until the study holds ``trials`` finished (COMPLETE or PRUNED) trials.

    Counting and asking happen under one cross-process lock, and running trials hold their
    slot, so N workers never overshoot; a slot held by a dead worker is freed when its
    heartbeat goes stale. Enqueued (WAITING) trials are asked first. Returns how many
    trials this worker ran.
    """
    start = time.monotonic()
    ran = 0
    while True:
        if timeout_s is not None and time.monotonic() - start >= timeout_s:
            log.info("timeout of %.0f s reached; not starting another trial", timeout_s)
            break
        if should_stop is not None and should_stop():
            break
        with study_lock(storage_url, study.study_name):
            optuna.storages.fail_stale_trials(study)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            finished = sum(s in FINISHED for s in states)
            running = states.count(TrialState.RUNNING)
            if finished >= trials:
                break
            with _own_heartbeat():
                trial = study.ask() if finished + running < trials else None
        if trial is None:  # every remaining slot is held by a running trial: wait for it
            time.sleep(poll_s)
            continue
        run_one(study, trial, objective)
        ran += 1
    return ran
