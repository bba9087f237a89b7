"""Ray's OptunaSearch writing into the study's own storage, with the Optuna backend's records.

Ray's ``OptunaSearch`` already asks and tells an Optuna study; this subclass makes the
records match the Optuna backend: seeds enqueued once with ``source=recommender``, the
trainable's reports turned into intermediate values and user attributes, a trial stopped by
the scheduler told PRUNED (Ray's own class would tell it COMPLETE with its last value), a
raising trial told FAIL with its ``error``, and no more trials started than the study still
needs (finished = COMPLETE or PRUNED, as in the Optuna backend's worker loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from autotransfer.search._objective import SOURCE_ATTR
from autotransfer.search._ray_trainable import COST, ERROR, METRIC, OBJECTIVE, TIME_ATTR, USER_ATTRS

log = logging.getLogger(__name__)

SEEDS_ATTR = "seeds_enqueued"
RAY_TRIAL_ATTR = "ray_trial_id"
CANCELLED = "TrialCancelled: the search was cancelled"

# should_stop callbacks by study name: Tune pickles its searcher and stoppers into the
# experiment folder, and a callback (often holding a thread event) cannot be pickled
_STOP_CHECKS: dict[str, Callable[[], bool]] = {}
# the budget's timeout as a time.monotonic() deadline: no new trial after it
_DEADLINES: dict[str, float | None] = {}


def _stop_requested(study_name: str) -> bool:
    check = _STOP_CHECKS.get(study_name)
    return bool(check is not None and check())


class CancelStopper(Stopper):
    """Stops every trial at its next report (the end of an epoch) once the caller's
    ``should_stop`` says so; the searcher then starts none, so the run ends.

    Not ``stop_all``: Tune stops trials that way without telling the searcher, which would
    leave their Optuna trials RUNNING.
    """

    def __init__(self, study_name: str) -> None:
        self.study_name = study_name

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return _stop_requested(self.study_name)

    def stop_all(self) -> bool:
        return False


class StudySearcher(OptunaSearch):
    """OptunaSearch on the study ``study_name`` in ``storage``, finishing at ``trials``."""

    def __init__(
        self,
        space: Any,
        *,
        study_name: str,
        storage: optuna.storages.BaseStorage,
        sampler: optuna.samplers.BaseSampler,
        trials: int,
        seeds: Sequence[tuple[dict[str, Any], str]] = (),
        multi_objective: bool = False,
    ) -> None:
        self._trials_target = trials
        self._seed_sources = [source for _, source in seeds]
        self._multi = multi_objective
        self._last_results: dict[str, dict[str, Any]] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._counted_at = 0.0
        self._finished_count = 0
        super().__init__(
            space=space,
            metric=[METRIC, "train_time_s"] if multi_objective else METRIC,
            mode=["max", "min"] if multi_objective else "max",
            points_to_evaluate=[params for params, _ in seeds],
            sampler=sampler,
            study_name=study_name,
            storage=storage,
        )

    @property
    def _study(self) -> optuna.Study:
        study = self._ot_study
        if study is None:
            raise RuntimeError("the searcher has no study yet: Tune has not set it up")
        return study

    def _setup_study(self, mode: str | list[str]) -> None:
        # Ray enqueues points_to_evaluate on every setup, a resumed study would get them
        # twice; enqueue them once per study, marked with where they came from.
        points, self._points_to_evaluate = self._points_to_evaluate, []
        super()._setup_study(mode)
        self._points_to_evaluate = points
        study = self._study
        if study.user_attrs.get(SEEDS_ATTR) is None:
            for params, source in zip(points, self._seed_sources, strict=True):
                study.enqueue_trial(params, user_attrs={SOURCE_ATTR: source}, skip_if_exists=True)
            study.set_user_attr(SEEDS_ATTR, len(points))

    def _finished(self) -> int:
        """COMPLETE + PRUNED trials in the storage (read at most twice a second)."""
        now = time.monotonic()
        if now - self._counted_at > 0.5:
            trials = self._study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
            )
            self._finished_count, self._counted_at = len(trials), now
        return self._finished_count

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if trial_id not in self._ot_trials:
            deadline = _DEADLINES.get(self._study_name)
            if _stop_requested(self._study_name) or (deadline and time.monotonic() > deadline):
                return Searcher.FINISHED
            running = len(set(self._ot_trials) - self._completed_trials)
            finished = self._finished()
            if finished >= self._trials_target:
                return Searcher.FINISHED
            if finished + running >= self._trials_target:
                return None  # every remaining slot is held by a running trial
        config = super().suggest(trial_id)
        trial = self._ot_trials[trial_id]
        if SOURCE_ATTR not in trial.user_attrs:
            trial.set_user_attr(SOURCE_ATTR, "sampler")
        trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        return config

    def _write_attrs(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]) -> None:
        written = self._written.setdefault(trial_id, {})
        for key in USER_ATTRS:
            if key in result and written.get(key) != result[key]:
                trial.set_user_attr(key, result[key])
                written[key] = result[key]

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        self._last_results[trial_id] = result
        try:
            self._write_attrs(trial_id, trial, result)
            self._report(trial, result)
        except UpdateFinishedTrialError:
            # a trial rerun after a hard kill that the storage already saw finish
            log.warning("trial %d is already finished in the storage", trial.number)

    def _report(self, trial: optuna.Trial, result: dict[str, Any]) -> None:
        """The epoch's accuracy as an intermediate value, once per epoch (a restarted trial
        reports its epochs again). Optuna keeps none for multi-objective studies."""
        epoch = int(result.get(TIME_ATTR) or 0)
        if ERROR in result or self._multi or epoch < 1:
            return
        if epoch not in self._study._storage.get_trial(trial._trial_id).intermediate_values:
            trial.report(float(result[METRIC]), epoch)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        last = {**self._last_results.pop(trial_id, {}), **(result or {})}
        values: float | list[float] | None = None
        try:
            if ERROR in last or error:
                state = TrialState.FAIL
                self._write_attrs(trial_id, trial, last)
                if ERROR not in last:
                    reason = "Ray reported the trial as failed (its worker or node died)"
                    trial.set_user_attr("error", reason)
            elif OBJECTIVE in last:
                state = TrialState.COMPLETE
                self._write_attrs(trial_id, trial, last)
                self._report(trial, last)  # a STOP decision skips on_trial_result
                values = [last[OBJECTIVE], last[COST]] if self._multi else last[OBJECTIVE]
            elif last.get(TIME_ATTR) and not _stop_requested(self._study_name):
                state = TrialState.PRUNED  # the scheduler stopped it after some epochs
                self._write_attrs(trial_id, trial, last)
                self._report(trial, last)
            else:  # cancelled, or stopped before its first epoch: rerun when resumed
                state = TrialState.FAIL
                trial.set_user_attr("error", CANCELLED)
            self._study.tell(trial, values, state=state, skip_if_finished=True)
        except UpdateFinishedTrialError:
            log.warning("trial %d is already finished in the storage", trial.number)
        self._completed_trials.add(trial_id)
        self._written.pop(trial_id, None)
        self._counted_at = 0.0  # recount on the next suggest
