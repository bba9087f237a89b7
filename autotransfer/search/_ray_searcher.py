"""Ray Tune's public ``Searcher`` and ``Stopper`` over the engine: Tune asks, the engine decides.

``EngineSearcher.suggest`` is the engine's ``ask`` (seeds first, the trial budget, the
timeout, a cancel); ``on_trial_result`` and ``on_trial_complete`` hand what the trainable
reported to the engine, which writes every record. A trial Tune's scheduler stopped after
some epochs is PRUNED; one whose trainable raised is FAIL with its error; one stopped by a
cancel is FAIL with ``TrialCancelled``, so a resumed study runs it again.

Tune pickles its searcher and stoppers into the experiment folder and restores them from
there, and a live session (an open database connection, a cancel callback) cannot be
pickled. They therefore hold only the study's name and find the live session of this
process through ``attached``, which the Ray executor enters around ``Tuner.fit``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from autotransfer.search._ray_trainable import METRIC, TIME_ATTR, WEIGHTS_KEY
from autotransfer.search._session import SearchSession, Ticket, Wait
from autotransfer.search._trial import EpochReport, TrialEnd
from autotransfer.search._worker_report import read_report

_live: dict[str, SearchSession] = {}


@contextlib.contextmanager
def attached(session: SearchSession) -> Iterator[None]:
    """Make ``session`` the live engine of its study's searcher and stopper in this process."""
    name = session.study.study_name
    _live[name] = session
    try:
        yield
    finally:
        _live.pop(name, None)


def _session(study_name: str) -> SearchSession:
    session = _live.get(study_name)
    if session is None:
        raise RuntimeError(
            f"no live search session for study {study_name!r}: run it through run_search"
        )
    return session


class CancelStopper(Stopper):
    """Stops every trial at its next report (the end of an epoch) once the search is
    cancelled; the searcher then starts none, so the run ends.

    Not ``stop_all``: Tune stops trials that way without telling the searcher, which would
    leave their Optuna trials RUNNING.
    """

    def __init__(self, study_name: str) -> None:
        self.study_name = study_name

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return _session(self.study_name).should_stop()

    def stop_all(self) -> bool:
        return False


class EngineScheduler(FIFOScheduler):
    """Tune's scheduler interface over the engine's pruner (the decision pruner): after each
    epoch the engine records the report and says whether the trial goes on."""

    def __init__(self, study_name: str) -> None:
        super().__init__()
        self.study_name = study_name

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        session = _session(self.study_name)
        ticket = session.find(ray_trial_id=trial.trial_id)
        if ticket is None or not _record_epoch(session, ticket, result):
            return TrialScheduler.CONTINUE
        verdict = session.verdict(ticket, EpochReport.from_dict(result))
        return TrialScheduler.STOP if verdict == "prune" else TrialScheduler.CONTINUE


def _record_epoch(session: SearchSession, ticket: Ticket, result: dict[str, Any]) -> bool:
    """Hand an epoch's report to the engine; False for a report that carries no epoch."""
    info = read_report(result)
    if not result.get(TIME_ATTR) or info.error is not None:
        return False
    session.started(ticket, worker=info.worker, ray_node=info.ray_node)
    session.epoch(ticket, EpochReport.from_dict(result))
    return True


class EngineSearcher(Searcher):
    """A Tune searcher whose configurations and records come from the engine's session.

    It keeps no state of its own: a Tune trial is found in the study by its ``ray_trial_id``
    record, also after ``Tuner.restore`` resumes an experiment.
    """

    def __init__(self, study_name: str) -> None:
        super().__init__(metric=METRIC, mode="max")
        self.study_name = study_name
        self._last: dict[str, dict[str, Any]] = {}

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        return True  # the engine's search space is the study's own; Tune's is not used

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        session = _session(self.study_name)
        ticket = session.ask()
        if ticket is None:
            return Searcher.FINISHED
        if isinstance(ticket, Wait):
            return None  # every remaining slot is held by a running trial
        session.annotate(ticket, ray_trial_id=trial_id)
        weights = session.weights_path(ticket)
        return {**ticket.params, **({WEIGHTS_KEY: str(weights)} if weights else {})}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        session = _session(self.study_name)
        ticket = session.find(ray_trial_id=trial_id)
        if ticket is not None:
            self._last[trial_id] = result
            _record_epoch(session, ticket, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        session = _session(self.study_name)
        ticket = session.find(ray_trial_id=trial_id)
        last = {**self._last.pop(trial_id, {}), **(result or {})}
        if ticket is None:
            return
        failure = read_report(last)
        end = TrialEnd.from_dict(last)
        if failure.error is not None or error:
            reason = failure.error or "Ray reported the trial as failed (its worker or node died)"
            session.failed(ticket, reason, failure.traceback)
        elif end is not None:
            _record_epoch(session, ticket, last)  # a STOP decision skips on_trial_result
            session.completed(ticket, end)
        elif last.get(TIME_ATTR) and not session.should_stop():
            _record_epoch(session, ticket, last)
            session.pruned(ticket)  # the scheduler stopped it after some epochs
        else:  # cancelled, or stopped before its first epoch: rerun when resumed
            session.cancelled(ticket, int(last.get(TIME_ATTR) or 0))

    def save(self, checkpoint_path: str) -> None:
        # the study is the state: Tune's checkpoint only names it
        with open(checkpoint_path, "w", encoding="utf-8") as f:
            json.dump({"study_name": self.study_name}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as f:
            self.study_name = json.load(f)["study_name"]
