"""The Optuna executor: worker processes on this machine run the engine's trials in-process."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import optuna
import torch
from optuna.storages import BaseStorage

from autotransfer.cache import FeatureCache
from autotransfer.data import TransferDataset
from autotransfer.finetune import TrialConfig
from autotransfer.search._prepared import PreparedSearch, SearchPlan
from autotransfer.search._session import SearchSession, Ticket, Wait
from autotransfer.search._store import heartbeat_interval
from autotransfer.search._trial import EpochReport, TrialCancelled, TrialEnd, this_worker, train
from autotransfer.storage import error_line

log = logging.getLogger(__name__)

Trainer = Callable[..., TrialEnd]
"""``train(config, dataset, *, cache, on_epoch, weights_to) -> TrialEnd``; see ``_trial.train``."""


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, trial_id: int) -> Iterator[None]:
    """Record heartbeats while a trial runs, so a killed worker's trial is detected as stale.

    A beat that fails (the database away for longer than the storage retries, see
    ``storage.open_storage(retry_s=…)``) logs one line and the next beat tries again: a live
    trial keeps beating through a database restart.

    The trial's first beat is usually recorded already (``SearchSession.ask(heartbeat=True)``).
    """
    interval = heartbeat_interval(storage)
    if not interval:
        yield
        return
    record = storage.record_heartbeat  # type: ignore[attr-defined]
    stop = threading.Event()

    def beat_once() -> None:
        try:
            record(trial_id)
        except Exception as exc:  # never fatal: the thread must live to beat again
            log.warning(
                "trial %d: heartbeat not recorded (%s); the next in %d s",
                trial_id,
                error_line(exc),
                interval,
            )

    def beat() -> None:
        while not stop.wait(interval):
            beat_once()

    beat_once()
    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def cache_for(session: SearchSession) -> FeatureCache | None:
    """This machine's feature cache: ``cache_dir``, else beside a storage file
    (``study.db`` → ``study-features/``), else the user's cache folder."""
    request = session.prepared.request
    return request.feature_cache(request.cache_dir, storage=request.storage)


def run_ticket(
    session: SearchSession,
    ticket: Ticket,
    *,
    dataset: TransferDataset,
    cache: FeatureCache | None,
    trainer: Trainer = train,
) -> None:
    """Train one ticket here and hand its end to the session; only interrupts propagate."""
    with heartbeat(session.study._storage, ticket.trial._trial_id):
        try:
            config: TrialConfig = session.config(ticket)
            session.started(ticket, worker=this_worker())

            def on_epoch(report: EpochReport) -> None:
                session.epoch(ticket, report)
                verdict = session.verdict(ticket, report)
                if verdict == "cancel":
                    raise TrialCancelled(report.epoch)
                if verdict == "prune":
                    raise optuna.TrialPruned(f"pruned at epoch {report.epoch}")

            weights = session.weights_path(ticket)
            end = trainer(config, dataset, cache=cache, on_epoch=on_epoch, weights_to=weights)
        except optuna.TrialPruned:
            session.pruned(ticket)
        except TrialCancelled as exc:
            session.cancelled(ticket, exc.epoch)
        except Exception as exc:  # a failing trial is data, never fatal to its study
            session.failed(ticket, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        except BaseException as exc:
            session.failed(ticket, f"{type(exc).__name__}: the worker was interrupted")
            raise
        else:
            session.completed(ticket, end)


def work(
    session: SearchSession,
    *,
    cache: FeatureCache | None = None,
    trainer: Trainer = train,
    poll_s: float = 1.0,
) -> int:
    """One worker: run the session's trials until it hands out no more; how many it ran."""
    ran = 0
    while True:
        ticket = session.ask(heartbeat=True)  # run_ticket beats for it
        if ticket is None:
            return ran
        if isinstance(ticket, Wait):  # every remaining slot is held by a running trial: wait for it
            time.sleep(poll_s)
            continue
        run_ticket(session, ticket, dataset=session.prepared.dataset, cache=cache, trainer=trainer)
        ran += 1


def _worker_process(plan_json: str, ready: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    plan = SearchPlan.model_validate_json(plan_json)
    if plan.request.threads:
        torch.set_num_threads(plan.request.threads)
    # the plan as the search prepared it, the data loaded here: nothing is prepared again
    prepared = PreparedSearch(plan, plan.load_dataset())
    session = SearchSession.open(prepared)  # samples with a seed of its own
    ready.set()
    work(session, cache=cache_for(session))


def _wait_ready(children: list[Any], events: list[Any], timeout_s: float = 300.0) -> None:
    """Start trials together: wait until every child opened the study (or died trying)."""
    deadline = time.monotonic() + timeout_s
    for child, event in zip(children, events, strict=True):
        while not event.wait(0.2) and child.is_alive() and time.monotonic() < deadline:
            pass


class OptunaExecutor:
    """``request.workers`` worker processes on this machine, this process being worker 0.

    Worker processes get the search plan as JSON (the search space included, no pickled
    data), load the dataset themselves (checked against the plan's fingerprint) and open
    their own session on the study; none prepares the search again.
    """

    def run(self, session: SearchSession, should_stop: Callable[[], bool]) -> None:
        request = session.prepared.request
        if request.workers > 1 and request.storage.kind == "sqlite":
            log.warning("several workers on SQLite serialise on its write lock; use PostgreSQL")
        ctx = mp.get_context("spawn")  # torch and forked threads do not mix
        threads = request.threads or max(1, (os.cpu_count() or 1) // request.workers)
        child_request = request.model_copy(update={"threads": threads})
        child_plan = session.prepared.plan.model_copy(update={"request": child_request})
        events = [ctx.Event() for _ in range(1, request.workers)]
        children = [
            ctx.Process(
                target=_worker_process,
                args=(child_plan.model_dump_json(), events[i - 1]),
                name=f"autotransfer-worker-{i}",
            )
            for i in range(1, request.workers)
        ]
        for child in children:
            child.start()
        try:
            _wait_ready(children, events)
            if request.threads or request.workers > 1:
                torch.set_num_threads(threads)
            work(session, cache=cache_for(session))
        finally:
            for child in children:
                child.join()
        failed = [c.name for c in children if c.exitcode != 0]
        if failed:
            raise RuntimeError(f"worker processes {failed} exited with errors; see their logs")
