"""``run_search``: prepare, open or resume the study, seed it, run it on its backend, audit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna

from autotransfer import record
from autotransfer.results import record_audit
from autotransfer.search._executor import executor
from autotransfer.search._prepared import PreparedSearch, Seed, prepare
from autotransfer.search._request import SearchRequest
from autotransfer.search._resolution import SizeDecision, settle_size
from autotransfer.search._seeding import Seeding, recommend_seeds
from autotransfer.search._session import SearchSession


def run_search(
    request: SearchRequest,
    *,
    seeds: Sequence[Seed] | None = None,
    should_stop: Callable[[], bool] | None = None,
    prepared: PreparedSearch | None = None,
    seeding: Seeding | None = None,
    size_decision: SizeDecision | None = None,
) -> optuna.Study:
    """Create or resume the study, seed it, and run it on the request's backend.

    ``seeds=None`` asks the recommender for them (when ``request.recommend``); pass a
    sequence (possibly empty) to choose them yourself. Running the same request again
    resumes the study and runs only the trials still missing (the recommender is not asked
    again). ``seeding``: the recommender's answer when the caller already asked it (the CLI
    does, to time the first seed before the search starts). Without ``prepared`` and
    ``seeds``, the input size is decided first (``_resolution.settle_size``); a caller that
    prepared the search settles it itself and passes its ``size_decision`` to be stored.
    ``should_stop`` (a cancel) stops handing out trials and stops running ones at their next
    epoch.

    The backend is looked up by name; a third one is a module with an ``Executor`` class
    (contract in ``_executor.py``) plus one line in ``_backends.BACKENDS``::

        "slurm": "autotransfer.search._slurm:SlurmExecutor",
    """
    backend = executor(request.backend)  # before any work: a missing extra says so now
    p = prepared or prepare(request)
    if seeds is None and prepared is None:  # the caller who prepared has settled the size
        p, seeding, size_decision = settle_size(p, seeding)
    stop = should_stop or (lambda: False)
    session = SearchSession.open(p, should_stop=stop)
    if size_decision is not None:
        record.write_study(session.study, size_decision=size_decision.to_dict())
    if record.read_study(session.study).seeds_enqueued is None:
        if seeds is None:
            seeding = seeding or recommend_seeds(p)
            seeds = seeding.seeds
            if seeding.recommendation is not None:
                record.write_study(session.study, recommendation=seeding.recommendation)
            if seeding.ranking is not None:
                record.write_study(session.study, backbone_ranking=seeding.ranking)
        session.enqueue_seeds(seeds)
    else:  # seeded already: brings back, once, the seeds an earlier run ended before
        session.enqueue_seeds([])
    backend.run(session, stop)
    session.close()
    record_audit(session.study)  # the recommended trial's rank and gap to the best
    return session.study
