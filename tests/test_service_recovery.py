"""A worker killed with SIGKILL mid-trial: another worker resumes the job and its study."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from service_helpers import service_env, spawn, stop, wait_for

from service import jobs
from service.db import JobState, get_sessionmaker
from service.schemas import StudyCreate

SPEC = {
    "name": "recovery",
    "parameters": {"freeze_depth": {"type": "depth", "fraction": [0.0, 0.35]}},
    "budget": {"trials": 2, "max_epochs": 3, "pruner": {"type": "none"}},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.mark.slow  # two worker start-ups, a stale wait and five short trials: ~35 s
def test_killed_worker_job_is_resumed_by_another(tmp_path: Path, database: str) -> None:
    url = database
    body = StudyCreate(
        dataset="synthetic:classes=3,per_class=40,size=32",
        spec=SPEC,
        input_size=32,
        recommend=False,
    ).model_dump(mode="json")
    with get_sessionmaker(url)() as session:
        job = jobs.create_job(session, body, "recovered")
    env = service_env(
        url,
        dev="1",
        heartbeat_s=0.5,
        stale_after_s=3,
        trial_heartbeat_s=1,
        trial_grace_s=2,
        poll_s=0.3,
    )
    storage = optuna.storages.RDBStorage(url)

    def trials() -> list[optuna.trial.FrozenTrial]:
        try:
            return optuna.load_study(study_name="recovered", storage=storage).get_trials()
        except KeyError:
            return []

    first = spawn(["worker"], env, tmp_path / "first.log")
    try:
        wait_for(
            lambda: any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials()),
            120,
            "the first worker to be inside a trial",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        stop(first)
    killed = [t.number for t in trials() if t.state == TrialState.RUNNING]
    assert len(killed) == 1
    second = spawn(["worker"], env, tmp_path / "second.log")
    try:
        with get_sessionmaker(url)() as session:
            done = wait_for(
                lambda: (
                    (j := jobs.get_job(session, job.id)).state != JobState.running
                    and j.attempts == 2
                    and j
                ),
                180,
                "the second worker to finish the job",
            )
    finally:
        stop(second)
    assert done.state == JobState.succeeded, (done.error, (tmp_path / "second.log").read_text())
    assert json.loads(done.request)["trials"] is None  # the spec's own budget
    final = trials()
    states = [t.state for t in final]
    # exactly the requested finished trials, plus the one that died with its worker
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 2
    assert states.count(TrialState.FAIL) == 1 and TrialState.RUNNING not in states
    assert [t.number for t in final if t.state == TrialState.FAIL] == killed
    assert sorted(t.number for t in final) == list(range(len(final)))
    assert done.worker is not None and f":{second.pid}:" in done.worker
