"""The database going away under a running search and under the API.

A search rides it out: its heartbeats and its trial records wait for the database and go on,
every trial is recorded once. The API answers 503 with ``Retry-After`` while the database is
away, never 500, and the first request after it is back succeeds.

The fast tests inject lost connections; the slow ones restart the real local PostgreSQL
server (stopped for a few seconds, serialised by a lock file, always started again and
waited for): other PostgreSQL tests running at that moment may fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import optuna
import pytest
import sqlalchemy
from conftest import PG_HOST, PG_PORT
from filelock import FileLock
from optuna.exceptions import StorageInternalError
from optuna.trial import FrozenTrial, TrialState
from service_helpers import KEY, serve, service_env, wait_for

from autotransfer.search._optuna import heartbeat
from autotransfer.storage import RetryingRDBStorage, is_transient
from service import jobs
from service.db import get_sessionmaker

DATA = "synthetic:classes=3,per_class=40,size=32"
DOWN_S = 3.0  # long enough for several heartbeats and an epoch's records to meet it


def _lost_connection() -> sqlalchemy.exc.OperationalError:
    reason = Exception("server closed the connection unexpectedly")
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, reason, connection_invalidated=True)


def _wrapped(cause: Exception) -> StorageInternalError:
    try:
        raise StorageInternalError("An exception is raised during the commit.") from cause
    except StorageInternalError as exc:
        return exc


def test_lost_connections_are_transient_and_bad_calls_are_not() -> None:
    assert is_transient(_lost_connection()) and is_transient(_wrapped(_lost_connection()))
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not is_transient(_wrapped(integrity))
    assert not is_transient(KeyError("no study")) and not is_transient(ValueError("x"))


def test_storage_calls_retry_a_lost_connection_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = RetryingRDBStorage(f"sqlite:///{tmp_path / 's.db'}", retry_s=30)
    study = optuna.create_study(storage=storage, study_name="s")
    failures = [3]

    def drop(*_: object) -> None:
        if failures[0]:
            failures[0] -= 1
            raise _lost_connection()

    sqlalchemy.event.listen(storage.engine, "before_cursor_execute", drop)
    study.set_user_attr("written", "once")  # three lost connections, then it is recorded
    assert failures == [0] and study.user_attrs == {"written": "once"}
    lines = [r for r in caplog.records if r.name == "autotransfer.storage._retry"]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING"], [r.message for r in lines]
    assert "is unavailable" in lines[0].message and "answers again" in lines[1].message
    assert "server closed the connection" in lines[0].message and not lines[0].exc_info
    with pytest.raises(KeyError):  # not the database's absence: raised at once
        storage.get_study_id_from_name("missing")


class _FlakyBeats:
    """A storage whose heartbeats fail on the 2nd and 3rd beat (the database away)."""

    def __init__(self) -> None:
        self.beats = 0

    def get_heartbeat_interval(self) -> int:
        return 1

    def record_heartbeat(self, trial_id: int) -> None:
        self.beats += 1
        if self.beats in (2, 3):
            raise _wrapped(_lost_connection())


def test_a_heartbeat_that_fails_logs_one_line_and_beats_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = _FlakyBeats()
    with heartbeat(storage, 7):  # type: ignore[arg-type]
        wait_for(lambda: storage.beats >= 5, 15, "two beats after the failed ones")
    failed = [r for r in caplog.records if "heartbeat not recorded" in r.message]
    assert len(failed) == 2 and not any(r.exc_info for r in failed), caplog.text
    assert "trial 7" in failed[0].message and "server closed the connection" in failed[0].message
    assert "Traceback" not in caplog.text


def _cluster() -> list[str]:
    """``pg_ctlcluster … main`` for the local server, or a skip where there is none."""
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*") if p.is_dir())
    local = PG_HOST in ("127.0.0.1", "localhost")
    if not versions or not local or shutil.which("pg_ctlcluster") is None:
        pytest.skip("restarting the database needs the local PostgreSQL cluster (pg_ctlcluster)")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _ready() -> bool:
    probe = ["pg_isready", "-q", "-h", PG_HOST, "-p", str(PG_PORT)]
    return subprocess.run(probe, check=False).returncode == 0


@contextmanager
def postgres_down(down_s: float = DOWN_S) -> Iterator[None]:
    """Stop the local server (fast mode: its sessions are ended, as a restart does), keep it
    down while the body runs and at least ``down_s`` s, then start it and wait until it
    accepts connections. One restart at a time on this machine."""
    cluster = _cluster()
    with FileLock(os.path.join(tempfile.gettempdir(), "autotransfer-postgres-restart.lock")):
        subprocess.run([*cluster, "stop"], check=True, timeout=120)
        stopped = time.monotonic()
        try:
            yield
            time.sleep(max(0.0, down_s - (time.monotonic() - stopped)))
        finally:
            subprocess.run([*cluster, "start"], check=True, timeout=120)
            wait_for(_ready, 120, "PostgreSQL to accept connections again", every=0.3)


def _trials(url: str, name: str) -> list[FrozenTrial]:
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []
    finally:
        storage.engine.dispose()


@pytest.mark.slow  # a real search of two several-second trials around the restart: ~30 s
def test_a_search_rides_out_a_database_restart(tmp_path: Path, postgres_url: str) -> None:
    name, trials = "restarted", 2
    command = [
        sys.executable,
        "-m",
        "autotransfer",
        "search",
        *("--dataset", DATA, "--input-size", "32", "--space", "small_data"),
        *("--stop", "trials", "--trials", str(trials), "--max-epochs", "6"),
        *("--no-cache", "--no-recommend", "--device", "cpu", "--threads", "1"),
        *("--heartbeat-interval", "1", "--grace-period", "30"),
        *("--storage", postgres_url, "--study-name", name, "--plots", str(tmp_path)),
    ]
    log = tmp_path / "search.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        # inside the first trial, with an epoch recorded: the restart meets its heartbeats
        # and its next epochs' records
        wait_for(
            lambda: any(
                t.state == TrialState.RUNNING and t.intermediate_values
                for t in _trials(postgres_url, name)
            ),
            120,
            "the search to be inside a trial",
            every=0.5,
        )
        with postgres_down():
            pass
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output and "StorageInternalError" not in output, output
    assert "is unavailable" in output, output  # the restart did meet the search
    final = _trials(postgres_url, name)
    states = [t.state for t in final]
    assert len(final) == trials, [(t.number, t.state) for t in final]
    assert all(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states), states
    assert sorted(t.number for t in final) == list(range(trials))  # each recorded once
    assert all(t.user_attrs.get("epochs_run") for t in final)


@pytest.mark.slow  # serve start-up, a restart and the requests around it: ~20 s
def test_the_api_answers_503_while_the_database_restarts(tmp_path: Path, postgres_url: str) -> None:
    with get_sessionmaker(postgres_url)() as session:
        job = jobs.create_job(session, {"dataset": DATA}, "restart-api")
    optuna.create_study(study_name="restart-api", storage=postgres_url)
    routes = ["/v1/studies", f"/v1/studies/{job.id}", f"/v1/studies/{job.id}/trials"]
    auth = {"Authorization": f"Bearer {KEY}"}
    env = service_env(postgres_url, api_keys=KEY, warm_catalog="false")
    with (
        serve(env, tmp_path / "service.log", "--no-worker") as base,
        httpx.Client(base_url=base, headers=auth, timeout=30) as client,
    ):
        assert [client.get(r).status_code for r in routes] == [200, 200, 200]
        answers: list[httpx.Response] = []
        errors: list[str] = []  # requests that got no answer at all
        took: list[tuple[float, float, str]] = []  # seconds, sent at, route
        back = threading.Event()
        start = time.monotonic()

        def hammer() -> None:  # from before the stop until the server is back
            while not back.is_set():
                for route in routes:
                    sent = time.monotonic()
                    try:
                        answers.append(client.get(route))
                        took.append((time.monotonic() - sent, sent - start, route))
                    except httpx.HTTPError as exc:
                        waited, at = time.monotonic() - sent, sent - start
                        errors.append(f"{route} at {at:.1f} s, {waited:.1f} s: {exc!r}")
                time.sleep(0.05)

        poller = threading.Thread(target=hammer)
        poller.start()
        try:
            time.sleep(0.5)
            with postgres_down():
                time.sleep(DOWN_S)
        finally:
            back.set()
            poller.join()
        after = [client.get(r) for r in routes]  # the first requests once it is back
    log = (tmp_path / "service.log").read_text()
    codes = [r.status_code for r in answers]
    assert not errors, (errors, log)
    assert set(codes) <= {200, 503} and 503 in codes, (codes, max(took), log)
    for r in answers:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) > 0
            assert "database is unavailable" in r.json()["detail"]
    assert [r.status_code for r in after] == [200, 200, 200], [r.text for r in after]
    assert "Traceback" not in log, log
