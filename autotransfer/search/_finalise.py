"""What a search leaves behind when its run ends (not when it is cancelled: a cancelled
search is resumed, and finalised then).

In order: why it stopped (``record.Stopped``), the decision at the space's tolerance
(``_decision.py``), the chosen trial's weights kept as the study's model (``_model.py``),
that model scored once on the untouched test split (``_test_eval.py``), and every enqueued
configuration the search will never run failed as skipped, saying so, so that nothing waits
forever in the storage or the dashboard.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from autotransfer import record
from autotransfer.search._decision import record_decision
from autotransfer.search._model import keep_chosen
from autotransfer.search._prepared import PreparedSearch
from autotransfer.search._store import quiet_heartbeat
from autotransfer.search._test_eval import score_on_test
from autotransfer.space import suggest
from autotransfer.storage import study_lock

SKIPPED = f"{record.SKIPPED} the search ended before this enqueued configuration ran"


def finalise(study: optuna.Study, prepared: PreparedSearch, stopped: record.Stopped | None) -> None:
    """Record the end of a run of ``study`` and what it decided (see the module docstring);
    nothing for a run that has not ended or was cancelled."""
    if stopped is None or stopped.kind == record.Stop.CANCELLED:
        return
    record.write_study(study, stop_reason=str(stopped), stopped=stopped.kind.value)
    with study_lock(prepared.request.storage, study.study_name):
        record_decision(study, tolerance=prepared.spec.budget.tolerance)
    keep_chosen(study, prepared.request)
    score_on_test(study, prepared)
    with study_lock(prepared.request.storage, study.study_name):
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        for _ in waiting:
            with quiet_heartbeat():
                trial = study.ask()
            suggest(trial, prepared.spec, prepared.blocks)  # records its parameters
            attrs = record.trial_attrs(error=SKIPPED, outcome=record.Outcome.SKIPPED)
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            with quiet_heartbeat():
                study.tell(trial.number, None, state=TrialState.FAIL, skip_if_finished=True)
