"""The engine: one process's handle on a study, shared by every executor.

What a search decides and records lives in the engine, once, split by role: the study store
(``_store.py``: opening, resuming, refusing a study that holds another search), the policy
(``_policy.py``: which trial is stopped early, when the search is done), the decision
(``_decision.py``) and the finaliser (``_finalise.py``: what a search leaves behind). This
module hands out trials (the seeds once, then the sampler's, while the policy allows) and
records every trial from its start to how it ended. Executors (``_executor.Executor``) only
run the trials it hands out.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from autotransfer import record
from autotransfer.finetune import TrialConfig
from autotransfer.search._climb import IMBALANCE, VARIED, Pending, Step, next_step
from autotransfer.search._decision import record_decision
from autotransfer.search._finalise import finalise
from autotransfer.search._model import staged_weights
from autotransfer.search._policy import failing, over_budget, settled
from autotransfer.search._prepared import PreparedSearch, Seed
from autotransfer.search._store import heartbeat_interval, open_study, quiet_heartbeat
from autotransfer.search._trial import EpochReport, TrialEnd
from autotransfer.space import SearchSpec, fit_to_space, optuna_distributions, suggest
from autotransfer.storage import study_lock

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
FAILURES = 10  # trials that fail in a row before a search gives up
Verdict = Literal["continue", "prune", "cancel"]


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

    @property
    def follows_procedure(self) -> bool:
        """Whether the search runs the procedure (``budget.policy: procedure``, one backbone)."""
        return self.spec.budget.policy == "procedure" and not self.spec.backbones

    def enqueue_seeds(self, seeds: Sequence[Seed]) -> int:
        """Enqueue the seeds once per study, marked with their source; they run first.

        Under the procedure (:attr:`follows_procedure`) the first seed is also the
        procedure's start (``StudyInfo.start``, the trial marked ``step="start"``); once the
        queue is empty the procedure asks for every further trial itself.

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
            for i, seed in enumerate(seeds):
                params = fit_to_space(self.spec, self.prepared.blocks, seed.params)
                attrs = record.trial_attrs(source=seed.source)
                if i == 0 and self.follows_procedure:
                    start = {"params": params, "source": seed.source}
                    record.write_study(self.study, start=start)
                    attrs = record.trial_attrs(source=seed.source, step=Step.START.value)
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

    def ask(self, *, heartbeat: bool = False) -> Ticket | Wait | None:
        """The next trial to run, ``WAIT`` while every remaining slot is held by a running
        trial, or ``None`` when the search is done (``stop_reason`` says why).

        Counting and asking happen under one cross-process lock and running trials hold their
        slot, so N workers never overshoot; a slot held by a dead worker is freed when its
        heartbeat goes stale. Enqueued (WAITING) trials are asked first.

        ``heartbeat``: the caller will beat for the trial while it runs (the Optuna
        backend). Its first beat is then recorded the moment the trial exists, before its
        parameters are written: a worker killed between the two would otherwise leave a
        RUNNING trial without a heartbeat, which never goes stale and which the procedure
        would wait on for ever. Ray trials do not beat (their driver finds its orphans).
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
            if TrialState.WAITING not in states:
                step = self._procedure_step()
                if step is not None or self.stop_reason is not None:
                    return step
            with quiet_heartbeat():
                trial = self.study.ask()
            storage = self.study._storage
            if heartbeat and heartbeat_interval(storage):
                storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
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

    def _procedure_step(self) -> Wait | None:
        """Under the procedure: enqueue its next configuration (None: ask it), ``WAIT`` while
        its next step needs a running trial's result, or ``None`` with ``stop_reason`` set
        once it is done and the search stops when settled. Called under the study lock."""
        start = record.read_study(self.study).start if self.follows_procedure else None
        if start is None:
            return None
        params = start["params"]
        if "freeze_depth" not in params or "base_lr" not in params:
            return None  # a space that fixes depth or LR: nothing to climb
        blocks = self.prepared.num_blocks
        budget = self.spec.budget
        nxt = next_step(
            self.study.get_trials(deepcopy=False),
            start=params,
            blocks=blocks,
            tolerance=budget.tolerance,
            lr_bounds=self._bounds("base_lr"),
            depth_bounds=self._bounds("freeze_depth"),
            imbalance=IMBALANCE if self._tries_imbalance() else (),
        )
        if isinstance(nxt, Pending):
            return WAIT
        if nxt is None:
            if budget.stop == "settled":
                self.stop_reason = record.Stopped(
                    record.Stop.SETTLED,
                    "the procedure is done: feature extraction, the first configuration, "
                    "the climb while unfreezing gained, and refinement around the best",
                )
            return None  # under stop: trials the sampler draws the rest
        fitted = fit_to_space(self.spec, self.prepared.blocks, nxt.params)
        same = {k: fitted[k] for k in ("freeze_depth", "base_lr", *VARIED) if k in fitted}
        if any(same.items() <= t.params.items() for t in self.study.get_trials(deepcopy=False)):
            # the space moved the proposal onto a tried point (a depth it does not offer):
            # the sampler draws this trial instead, so the procedure never repeats itself
            log.info("procedure: %s falls on a tried configuration", nxt.step.value)
            return None
        source = start["source"] if nxt.step == Step.START else record.PROCEDURE
        attrs = record.trial_attrs(source=source, step=nxt.step.value)
        self.study.enqueue_trial(fitted, user_attrs=attrs)
        log.info("procedure: %s (%s)", nxt.step.value, nxt.why)
        return None

    def _tries_imbalance(self) -> bool:
        """Whether the procedure tries the ways of handling skewed classes: the data is
        skewed and the space searches the class weighting and the balanced sampler."""
        return self.prepared.plan.skewed and all(v in self.spec.parameters for v in VARIED)

    def _bounds(self, name: str) -> Any:
        """The space's range of ``name``: (low, high), or None where it is not a range."""
        dist = optuna_distributions(self.spec, self.prepared.blocks).get(name)
        if isinstance(dist, IntDistribution | FloatDistribution):
            return (dist.low, dist.high)
        if isinstance(dist, CategoricalDistribution):
            numeric = [c for c in dist.choices if isinstance(c, int | float)]
            return (min(numeric), max(numeric)) if numeric else None
        return None

    def _settled(self) -> record.Stopped | None:
        """Why the search is done under ``stop: settled`` (its decision settled, or its run
        budget spent), or None."""
        budget = self.spec.budget
        trials = self.study.get_trials(deepcopy=False)
        # under the procedure, the procedure says when the decision is settled
        if not (self.follows_procedure and record.read_study(self.study).start):
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
        if not heartbeat_interval(storage):
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
        if info.step is not None:  # a procedure's step stays that step (its start, its baseline)
            attrs.update(record.trial_attrs(step=info.step))
        # a worker killed while it wrote the trial's parameters left only some of them; a
        # queued trial (a seed, a procedure's step) still holds the whole set it was queued with
        queued = trial.system_attrs.get("fixed_params") or {}
        self.study.enqueue_trial({**queued, **trial.params}, user_attrs=attrs)
        log.warning("trial %d will run again: %s", trial.number, info.error)

    def weights_path(self, ticket: Ticket) -> Path | None:
        """Where the ticket's trial saves its weights for :meth:`close` to keep, if chosen."""
        return staged_weights(self.prepared.request, self.study.study_name, ticket.number)

    def close(self) -> None:
        """After the last trial: record why the run ended and what it decided, keep the
        chosen model (``_finalise.finalise``)."""
        finalise(self.study, self.prepared, self.stop_reason)

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

    # --- for the Ray executor (it spells no record name) ----------------------------------

    def record_experiment(self, folder: Path) -> None:
        """Record the Tune experiment folder the study's trials run in (``ray_experiment``)."""
        record.write_study(self.study, ray_experiment=str(folder))

    def ray_trial_ids(self) -> dict[int, str]:
        """The running trials handed to Tune: trial number → ``ray_trial_id``."""
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        ids = {t.number: record.read_trial(t).ray_trial_id for t in running}
        return {number: ray_id for number, ray_id in ids.items() if ray_id is not None}

    def orphaned(self, ticket: Ticket, error: str) -> None:
        """Failed because the process that ran it is gone (outcome ``ORPHANED``)."""
        self.failed(ticket, error, outcome=record.Outcome.ORPHANED)
