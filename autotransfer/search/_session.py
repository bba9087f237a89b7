"""The engine: one process's handle on a study, shared by every executor.

What a search decides and records lives here, once: opening or resuming the study (and
refusing one that holds another search), enqueueing the seeds once, whether another trial
may start (finished trials counted under a cross-process lock, the timeout, a cancel), and
every trial's records from its start to how it ended. Executors (``_executor.Executor``)
only run the trials it hands out.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from autotransfer import record
from autotransfer.errors import UserInputError
from autotransfer.finetune import TrialConfig
from autotransfer.search._decision import record_decision
from autotransfer.search._model import keep_chosen, staged_weights
from autotransfer.search._policy import failing, over_budget, settled, study_pruner
from autotransfer.search._prepared import PreparedSearch, Seed
from autotransfer.search._test_eval import score_on_test
from autotransfer.search._trial import EpochReport, TrialEnd
from autotransfer.spec import (
    SearchSpec,
    fit_to_space,
    optuna_directions,
    optuna_sampler,
    suggest,
)
from autotransfer.storage import RIDE_OUT_S, open_storage, study_lock

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Wait:
    """What ``ask`` hands out while every remaining slot is held by a running trial: ask
    again shortly (a slot frees when a trial ends or its worker's heartbeat goes stale)."""


WAIT = Wait()
STALE = (
    "stale heartbeat: its worker stopped without finishing it (killed, or its machine was "
    "lost); run once more"
)
SKIPPED = f"{record.SKIPPED} the search ended before this enqueued configuration ran"
FAILURES = 10  # trials that fail in a row before a search gives up
Verdict = Literal["continue", "prune", "cancel"]


@contextlib.contextmanager
def quiet_heartbeat() -> Iterator[None]:
    # Optuna warns that heartbeats belong to Study.optimize; executors beat themselves
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        yield


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


@dataclass
class Ticket:
    """A trial the engine handed out: its Optuna trial, the sampled parameters and the
    training configuration built from them once, when it was asked (``invalid`` holds why
    none could be built; the executor's run then records the trial as failed)."""

    trial: optuna.Trial
    params: dict[str, Any]
    reported: set[int] = field(default_factory=set)  # epochs with an intermediate value
    written: dict[str, Any] = field(default_factory=dict)  # attributes already stored
    config: TrialConfig | None = None
    invalid: Exception | None = None

    @property
    def number(self) -> int:
        return self.trial.number


class SearchSession:
    """The engine for one process: asks, records and tells the trials of one study.

    Build it with :meth:`open`. ``should_stop`` (a cancel) and the budget's timeout stop
    handing out trials; ``stop_reason`` says which ended the run.
    """

    def __init__(
        self,
        prepared: PreparedSearch,
        study: optuna.Study,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.prepared = prepared
        self.study = study
        self.should_stop = should_stop or (lambda: False)
        timeout = prepared.spec.budget.timeout_s
        self.deadline = time.monotonic() + timeout if timeout else None
        self.stop_reason: record.Stopped | None = None
        self.opened = time.monotonic()
        self._tickets: dict[int, Ticket] = {}

    @classmethod
    def open(
        cls,
        prepared: PreparedSearch,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> SearchSession:
        return cls(prepared, open_study(prepared), should_stop=should_stop)

    @property
    def spec(self) -> SearchSpec:
        return self.prepared.spec

    @property
    def multi_objective(self) -> bool:
        return self.spec.budget.multi_objective

    # --- the study ------------------------------------------------------------------------

    def enqueue_seeds(self, seeds: Sequence[Seed]) -> int:
        """Enqueue the seeds once per study, marked with their source; they run first.

        A resumed study that still has trials to run enqueues again, once, the seeds an
        earlier run ended without trying (recorded FAIL with ``SKIPPED``). Checked and done
        under the study lock: of two processes that open one study at once, one enqueues.
        """
        with study_lock(self.prepared.request.storage, self.study.study_name):
            if record.read_study(self.study).seeds_enqueued is not None:
                if self.finished() < self.spec.budget.trials:
                    skipped = [
                        t
                        for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                        if record.read_trial(t).ended == record.Outcome.SKIPPED
                    ]
                    for trial in skipped:
                        self._retry(trial)
                return 0
            for seed in seeds:
                params = fit_to_space(self.spec, self.prepared.blocks, seed.params)
                attrs = record.trial_attrs(source=seed.source)
                self.study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
            record.write_study(self.study, seeds_enqueued=len(seeds))
            return len(seeds)

    def finished(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=FINISHED))

    def _ended(self) -> record.Stopped | None:
        if self.should_stop():
            return record.Stopped(record.Stop.CANCELLED, "asked to stop; run it again to resume")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            timeout = self.spec.budget.timeout_s
            return record.Stopped(record.Stop.TIMEOUT, f"no trial starts after {timeout:g} s")
        return None

    # --- handing out trials ---------------------------------------------------------------

    def ask(self) -> Ticket | Wait | None:
        """The next trial to run, ``WAIT`` while every remaining slot is held by a running
        trial, or ``None`` when the search is done (``stop_reason`` says why).

        Counting and asking happen under one cross-process lock and running trials hold their
        slot, so N workers never overshoot; a slot held by a dead worker is freed when its
        heartbeat goes stale. Enqueued (WAITING) trials are asked first.
        """
        ended = self._ended()
        if ended is not None:
            self.stop_reason = ended
            return None
        target = self.spec.budget.trials
        with study_lock(self.prepared.request.storage, self.study.study_name):
            self._recover_stale()
            states = [t.state for t in self.study.get_trials(deepcopy=False)]
            finished = sum(s in FINISHED for s in states)
            if finished >= target:
                self.stop_reason = record.Stopped(
                    record.Stop.TRIALS, f"the {target} requested trials have finished"
                )
                return None
            gave_up = failing(self.study.get_trials(deepcopy=False), limit=FAILURES)
            if gave_up is not None:
                self.stop_reason = gave_up
                return None
            if self.spec.budget.stop == "settled":
                reason = self._settled()
                if reason is not None:
                    self.stop_reason = reason
                    return None
            if finished + states.count(TrialState.RUNNING) >= target:
                return WAIT
            with quiet_heartbeat():
                trial = self.study.ask()
        params = suggest(trial, self.spec, self.prepared.blocks)
        ticket = Ticket(trial, params)
        try:
            ticket.config = self.prepared.trial_config(params)
        except Exception as exc:  # an invalid combination: the trial fails, the study goes on
            ticket.invalid = exc
        self._tickets[trial.number] = ticket
        ticket.written.update(trial.user_attrs)  # an enqueued seed arrives with its source
        if record.TrialInfo.from_attrs(trial.user_attrs).source is None:
            self._write(ticket, source=record.SAMPLER)
        return ticket

    def _settled(self) -> record.Stopped | None:
        """Why the search is done under ``stop: settled`` (its decision settled, or its run
        budget spent), or None."""
        budget = self.spec.budget
        trials = self.study.get_trials(deepcopy=False)
        done = settled(trials, patience=budget.patience, tolerance=budget.tolerance)
        if done is not None:
            return done.reason()
        if budget.budget_runs is None:
            return None
        return over_budget(time.monotonic() - self.opened, trials, budget_runs=budget.budget_runs)

    def _recover_stale(self) -> None:
        """Fail the trials whose worker died (stale heartbeat), saying so, and enqueue each
        for one more run when the budget has room for it behind the trials already queued:
        a killed worker is no verdict on its configuration."""
        storage = self.study._storage
        get_interval = getattr(storage, "get_heartbeat_interval", None)
        if get_interval is None or not get_interval():
            return
        # Optuna fails stale trials without a reason and has no public way to list them first
        stale = storage._get_stale_trial_ids(self.study._study_id)  # type: ignore[attr-defined]
        for trial_id in stale:
            with contextlib.suppress(UpdateFinishedTrialError):  # another worker was faster
                record.write_trial(storage, trial_id, error=STALE, outcome=record.Outcome.STALE)
        with quiet_heartbeat():
            optuna.storages.fail_stale_trials(self.study)
        trials = self.study.get_trials(deepcopy=False)
        ahead = sum(t.state in (*FINISHED, TrialState.RUNNING, TrialState.WAITING) for t in trials)
        if ahead >= self.spec.budget.trials:
            return  # finished, running and queued trials fill the budget: it would be skipped
        for trial_id in stale:
            frozen = storage.get_trial(trial_id)
            if (
                frozen.state == TrialState.FAIL
                and record.read_trial(frozen).ended == record.Outcome.STALE
            ):
                self._retry(frozen)

    def _retry(self, trial: FrozenTrial) -> None:
        """Enqueue ``trial``'s configuration once more, with its source (a retry is not
        retried: a configuration that kills its worker twice is given up)."""
        info = record.read_trial(trial)
        if info.retry_of is not None:
            return
        retried = {record.read_trial(t).retry_of for t in self.study.get_trials(deepcopy=False)}
        if trial.number in retried:
            return
        attrs = record.trial_attrs(source=info.source or record.SAMPLER, retry_of=trial.number)
        self.study.enqueue_trial(dict(trial.params), user_attrs=attrs)
        log.warning("trial %d will run again: %s", trial.number, info.error)

    def weights_path(self, ticket: Ticket) -> Path | None:
        """Where the ticket's trial saves its weights for :meth:`close` to keep, if chosen."""
        return staged_weights(self.prepared.request, self.study.study_name, ticket.number)

    def close(self) -> None:
        """After the last trial: a search that ended (not a cancel, which is resumed) records
        why, keeps the chosen trial's weights (``_model.py``), and fails the enqueued
        configurations it will never run, saying so, so that nothing waits forever in the
        storage or the dashboard."""
        stopped = self.stop_reason
        if stopped is None or stopped.kind == record.Stop.CANCELLED:
            return
        record.write_study(self.study, stop_reason=str(stopped), stopped=stopped.kind.value)
        with study_lock(self.prepared.request.storage, self.study.study_name):
            record_decision(self.study, tolerance=self.spec.budget.tolerance)
        keep_chosen(self.study, self.prepared.request)
        score_on_test(self.study, self.prepared)
        with study_lock(self.prepared.request.storage, self.study.study_name):
            waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            for _ in waiting:
                with quiet_heartbeat():
                    trial = self.study.ask()
                suggest(trial, self.spec, self.prepared.blocks)  # records its parameters
                ticket = Ticket(trial, dict(trial.params), written=dict(trial.user_attrs))
                self._write(ticket, error=SKIPPED, outcome=record.Outcome.SKIPPED)
                self._tell(ticket, TrialState.FAIL)

    def ticket(self, number: int) -> Ticket:
        """The ticket of trial ``number``, also one asked by an earlier run of this study
        (a resumed Ray experiment continues the trials it had started)."""
        if number not in self._tickets:
            frozen = self.study.get_trials(deepcopy=False)[number]
            trial = optuna.Trial(self.study, frozen._trial_id)
            ticket = Ticket(trial, dict(frozen.params), set(frozen.intermediate_values))
            ticket.written.update(frozen.user_attrs)
            self._tickets[number] = ticket
        return self._tickets[number]

    def find(self, **attrs: Any) -> Ticket | None:
        """The running trial whose records hold ``attrs`` (e.g. ``ray_trial_id=…``), also one
        an earlier run of this study started; None when there is none."""
        wanted = record.trial_attrs(**attrs)
        for ticket in self._tickets.values():
            if all(ticket.written.get(k) == v for k, v in wanted.items()):
                return ticket
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if all(trial.user_attrs.get(k) == v for k, v in wanted.items()):
                return self.ticket(trial.number)
        return None

    def config(self, ticket: Ticket) -> TrialConfig:
        """The ticket's training configuration, built when it was asked (raises for an
        invalid combination; a ticket of an earlier run of the study builds it now)."""
        if ticket.invalid is not None:
            raise ticket.invalid
        if ticket.config is None:
            ticket.config = self.prepared.trial_config(ticket.params)
        return ticket.config

    # --- recording ------------------------------------------------------------------------

    def annotate(self, ticket: Ticket, **values: Any) -> None:
        """Set trial attributes (:class:`record.TrialInfo` fields); unchanged ones are skipped."""
        self._write(ticket, **values)

    def _write(self, ticket: Ticket, **values: Any) -> None:
        changed = {k: v for k, v in values.items() if ticket.written.get(k, object()) != v}
        if changed:
            for key, value in record.trial_attrs(**changed).items():
                ticket.trial.set_user_attr(key, value)
            ticket.written.update(changed)

    def started(self, ticket: Ticket, **where: Any) -> None:
        """Record what the trial trains and where (``worker``; on Ray also ``ray_node``)."""
        p = self.prepared
        config = self.config(ticket)
        self._write(
            ticket,
            backbone=config.backbone,
            weights=p.request.weights,
            freeze_depth=config.freeze_depth,
            num_blocks=p.backbone_blocks.get(config.backbone, p.num_blocks),
            input_size=config.input_size,
            dataset_fingerprint=p.dataset.fingerprint,
            inference=p.inference(config).to_dict(),
            config=config.model_dump(mode="json"),
            **where,
        )

    def epoch(self, ticket: Ticket, report: EpochReport) -> None:
        """Record an epoch: its score (the study's metric) as the intermediate value (single
        objective; once per epoch, a restarted trial reports its epochs again) and the
        running totals."""
        self._write(
            ticket,
            epochs_run=report.epoch,
            train_time_s=round(report.elapsed_s, 3),
            trainable_parameters=report.trainable_parameters,
        )
        if not self.multi_objective and report.epoch not in ticket.reported:
            ticket.trial.report(report.val_score, report.epoch)
            ticket.reported.add(report.epoch)

    def verdict(self, ticket: Ticket, report: EpochReport) -> Verdict:
        """After :meth:`epoch`: go on, prune (the study's pruner), or cancel (``should_stop``).

        A trial whose last epoch is done is never stopped: its work is complete.
        """
        if report.epoch >= self.spec.budget.max_epochs:
            return "continue"
        if self.should_stop():
            return "cancel"
        if not self.multi_objective and ticket.trial.should_prune():
            return "prune"
        return "continue"

    def _tell(
        self,
        ticket: Ticket,
        state: TrialState,
        values: float | list[float] | None = None,
    ) -> None:
        try:
            with quiet_heartbeat():
                self.study.tell(ticket.number, values, state=state, skip_if_finished=True)
        except UpdateFinishedTrialError:
            log.warning("trial %d is already finished in the storage", ticket.number)
        self._tickets.pop(ticket.number, None)

    def completed(self, ticket: Ticket, end: TrialEnd) -> None:
        self._write(
            ticket,
            train_time_s=round(end.train_time_s, 3),
            best_epoch=end.best_epoch,
            final_val_accuracy=end.final_val_accuracy,
            best_val_accuracy=end.best_val_accuracy,
        )
        if end.class_report:
            self._write(ticket, class_report=end.class_report)
        values = None
        if self.multi_objective:  # the cost: training time, or across backbones running time
            cost = end.train_time_s
            if self.spec.backbones:
                cost = self.prepared.inference(self.config(ticket)).latency_ms
            values = [end.best_val_score, cost]
        self._write(ticket, outcome=record.Outcome.COMPLETE)
        self._tell(ticket, TrialState.COMPLETE, values or end.best_val_score)
        # only a completed trial can change the decision; under the lock, so that of two
        # workers finishing at once the later decision is the one stored
        with study_lock(self.prepared.request.storage, self.study.study_name):
            record_decision(self.study, tolerance=self.spec.budget.tolerance)

    def pruned(self, ticket: Ticket) -> None:
        """Stopped by the pruner or scheduler; its value is its last epoch's score."""
        self._write(ticket, outcome=record.Outcome.PRUNED)
        self._tell(ticket, TrialState.PRUNED)

    def failed(
        self,
        ticket: Ticket,
        error: str,
        traceback: str | None = None,
        outcome: record.Outcome = record.Outcome.FAILED,
    ) -> None:
        """Failed: the error (``Type: message``), the traceback's tail and the outcome
        (its own error unless ``outcome`` says otherwise) are recorded."""
        self._write(ticket, error=error[:2000], outcome=outcome)
        if traceback:
            self._write(ticket, traceback=traceback[-4000:])
        log.warning("trial %d failed: %s", ticket.number, error)
        self._tell(ticket, TrialState.FAIL)

    def cancelled(self, ticket: Ticket, after_epoch: int) -> None:
        """Stopped by a cancel: FAIL, so that a resumed study runs it again."""
        when = f"after epoch {after_epoch}" if after_epoch else "before its first epoch"
        self._write(
            ticket, error=f"TrialCancelled: cancelled {when}", outcome=record.Outcome.CANCELLED
        )
        self._tell(ticket, TrialState.FAIL)
