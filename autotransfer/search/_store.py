"""The study store: opening or resuming a study, and refusing one that holds another search.

A study is identified by its header (``record.StudyInfo.IDENTITY``: backbone, data
fingerprint, space, input size), written by the first process that opens it; every later
opener (a worker process, a second search joining it, a resumed run) must agree with it, is
counted, and samples with a seed of its own.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import optuna

from autotransfer import record
from autotransfer.errors import UserInputError
from autotransfer.search._policy import study_pruner
from autotransfer.search._prepared import PreparedSearch
from autotransfer.space import SearchSpec, optuna_directions, optuna_sampler
from autotransfer.storage import RIDE_OUT_S, open_storage, study_lock


@contextlib.contextmanager
def quiet_heartbeat() -> Iterator[None]:
    # Optuna warns that heartbeats belong to Study.optimize; executors beat themselves
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        yield


def heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """Seconds between a running trial's heartbeats on ``storage``; None where it keeps none.
    Duck-typed: Optuna wraps RDB storages in a caching layer that forwards heartbeats."""
    get_interval = getattr(storage, "get_heartbeat_interval", None)
    return get_interval() if get_interval is not None else None


def cost_metric(spec: SearchSpec) -> str:
    """The second objective of a ``*_and_cost`` space: training seconds, or, for a space that
    searches the backbone, the chosen network's latency per image (what it costs to run)."""
    return "latency_ms" if spec.backbones else "train_time_s"


def _header(p: PreparedSearch) -> record.StudyInfo:
    return record.StudyInfo(
        backbone=p.request.backbone,
        weights=p.request.weights,
        dataset=str(p.request.dataset),
        dataset_fingerprint=p.dataset.fingerprint,
        num_blocks=p.num_blocks,
        input_size=p.input_size,
        space=p.spec.name,
        spec=p.spec.model_dump(mode="json"),
        requested_trials=p.spec.budget.trials,
        metric_why=p.plan.metric_why,
    )


def open_study(p: PreparedSearch) -> optuna.Study:
    """Create the study, or load it and check it is the same search (not a name clash).

    Every process that opens the study (a search, its worker processes, a second search of
    the same study joining it, a later run resuming it) is counted under the study lock and
    samples with the space's seed plus the number that opened it before: the first opener of
    a fresh study samples exactly as ever (same seed → same trials), and no process repeats
    another's draws. The storage rides out a database restart (``storage.RIDE_OUT_S``).
    """
    request = p.request
    storage = open_storage(
        request.storage,
        heartbeat_interval=request.heartbeat_interval,
        grace_period=request.grace_period,
        retry_s=RIDE_OUT_S,
    )
    seed = p.spec.budget.seed
    optuna_log = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "Using an existing study…" per worker
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=p.study_name,
            directions=optuna_directions(p.spec),
            sampler=optuna_sampler(p.spec, seed=seed),
            pruner=study_pruner(p.spec),
            load_if_exists=True,
        )
    finally:
        optuna.logging.set_verbosity(optuna_log)
    expected = _header(p)
    with study_lock(request.storage, p.study_name):  # one header, and one count per opener
        attrs = study.user_attrs
        stored = record.StudyInfo.from_attrs(attrs)
        if not attrs:
            record.write_study(study, **expected.to_attrs())
            metric = p.spec.budget.metric
            multi = p.spec.budget.multi_objective
            study.set_metric_names([metric, cost_metric(p.spec)] if multi else [metric])
        else:
            clash = expected.mismatch(stored)
            if clash is not None:
                key, was, wanted = clash
                raise UserInputError(
                    f"Study {p.study_name!r} in {request.storage} was created with "
                    f"{key}={was!r}, but this search has {key}={wanted!r}. Resume it with the "
                    f"same settings or pass another --study-name."
                )
            record.write_study(study, requested_trials=expected.requested_trials)
        before = stored.opens or 0
        record.write_study(study, opens=before + 1)
    if before:
        study.sampler = optuna_sampler(p.spec, seed=seed + before)
    return study
