"""Run a study on the Optuna backend: create or resume it, seed it, and drive N workers."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import torch

from autotransfer.cache import make_cache
from autotransfer.errors import UserInputError
from autotransfer.results._audit import record_audit
from autotransfer.search._objective import SOURCE_ATTR, TrialObjective
from autotransfer.search._prepared import PreparedSearch, Seed, prepare
from autotransfer.search._request import SearchRequest
from autotransfer.search._seeding import default_seeds
from autotransfer.search._storage import make_storage
from autotransfer.search._worker import run_worker
from autotransfer.spec import (
    fit_to_space,
    optuna_directions,
    optuna_pruner,
    optuna_sampler,
)

log = logging.getLogger(__name__)


def _study_attrs(p: PreparedSearch) -> dict[str, Any]:
    return {
        "backbone": p.request.backbone,
        "weights": p.request.weights,
        "dataset": p.request.dataset,
        "dataset_fingerprint": p.dataset.fingerprint,
        "num_blocks": p.num_blocks,
        "input_size": p.input_size,
        "space": p.spec.name,
        "spec": p.spec.model_dump(mode="json"),
        "requested_trials": p.spec.budget.trials,
    }


def open_study(p: PreparedSearch, *, worker_index: int = 0) -> optuna.Study:
    """Create the study, or load it and check it is the same search (not a name clash)."""
    storage = make_storage(
        p.request.storage,
        heartbeat_interval=p.request.heartbeat_interval,
        grace_period=p.request.grace_period,
    )
    study = optuna.create_study(
        storage=storage,
        study_name=p.study_name,
        directions=optuna_directions(p.spec),
        sampler=optuna_sampler(p.spec, seed=p.spec.budget.seed + worker_index),
        pruner=optuna_pruner(p.spec),
        load_if_exists=True,
    )
    expected = _study_attrs(p)
    if not study.user_attrs:
        for key, value in expected.items():
            study.set_user_attr(key, value)
        return study
    for key in ("backbone", "dataset_fingerprint", "space", "input_size"):
        if study.user_attrs.get(key) != expected[key]:
            raise UserInputError(
                f"Study {p.study_name!r} in {p.request.storage} was created with {key}="
                f"{study.user_attrs.get(key)!r}, but this search has {key}={expected[key]!r}. "
                f"Resume it with the same settings or pass another --study-name."
            )
    study.set_user_attr("requested_trials", expected["requested_trials"])
    return study


def enqueue_seeds(study: optuna.Study, p: PreparedSearch, seeds: Sequence[Seed]) -> int:
    """Enqueue seeds once per study; they run before any sampled trial."""
    if study.user_attrs.get("seeds_enqueued") is not None:
        return 0
    for seed in seeds:
        params = fit_to_space(p.spec, p.num_blocks, seed.params)
        study.enqueue_trial(params, user_attrs={SOURCE_ATTR: seed.source}, skip_if_exists=True)
    study.set_user_attr("seeds_enqueued", len(seeds))
    return len(seeds)


def work(
    p: PreparedSearch,
    *,
    worker_index: int = 0,
    should_stop: Callable[[], bool] | None = None,
    ready: Any = None,
) -> int:
    """One worker: open the study and run trials until the requested count is reached.

    ``ready`` (a multiprocessing event) is set once the study is open, so that the parent
    starts its own trials together with its children.
    """
    if p.request.threads:
        torch.set_num_threads(p.request.threads)
    study = open_study(p, worker_index=worker_index)
    if ready is not None:
        ready.set()
    objective = TrialObjective(
        p.spec,
        p.dataset,
        backbone=p.request.backbone,
        weights=p.request.weights,
        num_blocks=p.num_blocks,
        input_size=p.input_size,
        device=p.request.device,
        should_stop=should_stop,
        cache=make_cache(p.request.cache, p.request.cache_dir, storage=p.request.storage),
    )
    return run_worker(
        study,
        objective,
        storage_url=p.request.storage,
        trials=p.spec.budget.trials,
        timeout_s=p.spec.budget.timeout_s,
        should_stop=should_stop,
    )


def _worker_process(request_json: str, worker_index: int, ready: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    request = SearchRequest.model_validate_json(request_json)
    work(prepare(request), worker_index=worker_index, ready=ready)


def _wait_ready(children: list[Any], events: list[Any], timeout_s: float = 300.0) -> None:
    """Start trials together: wait until every child opened the study (or died trying)."""
    deadline = time.monotonic() + timeout_s
    for child, event in zip(children, events, strict=True):
        while not event.wait(0.2) and child.is_alive() and time.monotonic() < deadline:
            pass


def run_search(
    request: SearchRequest,
    *,
    seeds: Sequence[Seed] | None = None,
    should_stop: Callable[[], bool] | None = None,
    prepared: PreparedSearch | None = None,
) -> optuna.Study:
    """Create or resume the study, seed it, and run it on the request's backend.

    ``seeds=None`` asks the recommender for them (when ``request.recommend``); pass a
    sequence (possibly empty) to choose them yourself. Running the same request again
    resumes the study and runs only the trials still missing.
    """
    p = prepared or prepare(request)
    if seeds is None:
        seeds = default_seeds(p)
    if request.backend == "ray":
        from autotransfer.search._ray import run_ray_search

        study = run_ray_search(p, seeds=seeds, should_stop=should_stop)
    else:
        study = _run_optuna(p, seeds, should_stop)
    record_audit(study)  # the recommended trial's rank and gap to the best
    return study


def _run_optuna(
    p: PreparedSearch, seeds: Sequence[Seed], should_stop: Callable[[], bool] | None
) -> optuna.Study:
    """The Optuna backend: ``request.workers`` workers on this machine.

    Worker processes get the request (paths and names), never pickled data: each loads the
    dataset itself. This process is worker 0.
    """
    request = p.request
    study = open_study(p)
    enqueue_seeds(study, p, seeds)
    if request.workers > 1 and request.storage.startswith("sqlite"):
        log.warning("several workers on SQLite serialise on its write lock; use PostgreSQL")
    ctx = mp.get_context("spawn")  # torch and forked threads do not mix
    threads = request.threads or max(1, (os.cpu_count() or 1) // request.workers)
    child_request = request.model_copy(update={"threads": threads}).model_dump_json()
    events = [ctx.Event() for _ in range(1, request.workers)]
    children = [
        ctx.Process(
            target=_worker_process,
            args=(child_request, i, events[i - 1]),
            name=f"autotransfer-worker-{i}",
        )
        for i in range(1, request.workers)
    ]
    for child in children:
        child.start()
    try:
        _wait_ready(children, events)
        if request.workers > 1:
            torch.set_num_threads(threads)
        work(p, worker_index=0, should_stop=should_stop)
    finally:
        for child in children:
            child.join()
    failed = [c.name for c in children if c.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker processes {failed} exited with errors; see their logs above")
    return study
