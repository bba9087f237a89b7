"""Running studies: the trial objective, the worker loop, storages and the decision."""

from __future__ import annotations

from autotransfer.search._objective import TrialObjective, trial_config
from autotransfer.search._request import SearchRequest
from autotransfer.search._run import (
    PreparedSearch,
    Seed,
    enqueue_seeds,
    open_study,
    prepare,
    run_search,
)
from autotransfer.search._seeding import RECOMMENDATION_ATTR, default_seeds
from autotransfer.search._storage import DEFAULT_STORAGE, make_storage, study_lock, study_names
from autotransfer.search._worker import FINISHED, heartbeat, run_one, run_worker

__all__ = [
    "DEFAULT_STORAGE",
    "FINISHED",
    "RECOMMENDATION_ATTR",
    "PreparedSearch",
    "SearchRequest",
    "Seed",
    "TrialObjective",
    "default_seeds",
    "enqueue_seeds",
    "heartbeat",
    "make_storage",
    "open_study",
    "prepare",
    "run_one",
    "run_search",
    "run_worker",
    "study_lock",
    "study_names",
    "trial_config",
]
