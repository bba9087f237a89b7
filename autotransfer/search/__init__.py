"""Running studies: one engine (``SearchSession``) driven by executors (Optuna, Ray).

``run_search`` prepares a request, opens or resumes its study, seeds it and runs it on the
backend the request names; ``BACKENDS`` maps names to executors (``_executor.py`` holds
their contract, ``_backends.py`` how to add one).
"""

from __future__ import annotations

from autotransfer.search._backends import BACKENDS
from autotransfer.search._decision import choose, cost_of, decide, record_decision, study_decision
from autotransfer.search._estimate import Estimate, estimate
from autotransfer.search._executor import Executor, executor
from autotransfer.search._export import Exported, export_decision
from autotransfer.search._prepared import PreparedSearch, SearchPlan, Seed, prepare
from autotransfer.search._request import SearchOptions, SearchRequest
from autotransfer.search._resolution import SizeDecision, settle_size
from autotransfer.search._run import run_search
from autotransfer.search._seeding import Seeding, recommend_seeds
from autotransfer.search._session import WAIT, SearchSession, Ticket, Wait
from autotransfer.search._store import open_study
from autotransfer.search._trial import EpochReport, TrialCancelled, TrialEnd

__all__ = [
    "BACKENDS",
    "WAIT",
    "EpochReport",
    "Estimate",
    "Executor",
    "Exported",
    "PreparedSearch",
    "SearchOptions",
    "SearchPlan",
    "SearchRequest",
    "SearchSession",
    "Seed",
    "Seeding",
    "SizeDecision",
    "Ticket",
    "TrialCancelled",
    "TrialEnd",
    "Wait",
    "choose",
    "cost_of",
    "decide",
    "estimate",
    "executor",
    "export_decision",
    "open_study",
    "prepare",
    "recommend_seeds",
    "record_decision",
    "run_search",
    "settle_size",
    "study_decision",
]
