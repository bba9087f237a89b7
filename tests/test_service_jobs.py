"""Job-store contract: the same suite on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from service import jobs
from service.db import Job, JobState, get_engine, get_sessionmaker

REQUEST = {"dataset": "digits", "trials": 2}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    get_engine(url).dispose()  # lets the fixture drop the database


@pytest.fixture
def session(store_url: str) -> Iterator[Session]:
    with get_sessionmaker(store_url)() as s:
        yield s


def test_create_get_and_unique_study_name(session: Session) -> None:
    job = jobs.create_job(session, REQUEST, "my-study")
    assert job.state == JobState.queued and job.attempts == 0
    assert jobs.get_job(session, job.id).study_name == "my-study"
    with pytest.raises(jobs.JobConflict, match="my-study"):
        jobs.create_job(session, REQUEST, "my-study")
    generated = jobs.create_job(session, REQUEST, None)
    assert generated.study_name.startswith("job-") and generated.id != job.id
    assert jobs.get_job(session, "nope") is None


def test_list_paginates_newest_first_and_filters(session: Session) -> None:
    made = [jobs.create_job(session, REQUEST, None) for _ in range(5)]
    jobs.request_cancel(session, made[0].id)
    page1, count = jobs.list_jobs(session, offset=0, limit=2)
    page2, _ = jobs.list_jobs(session, offset=2, limit=2)
    page3, _ = jobs.list_jobs(session, offset=4, limit=2)
    assert count == 5
    ids = [j.id for j in page1 + page2 + page3]
    assert sorted(ids) == sorted(j.id for j in made) and len(set(ids)) == 5
    assert ids[-1] == made[0].id  # oldest last
    cancelled, n = jobs.list_jobs(session, state="cancelled")
    assert n == 1 and [j.id for j in cancelled] == [made[0].id]
    assert jobs.list_jobs(session, state="queued")[1] == 4


def test_claim_takes_oldest_once(session: Session) -> None:
    first = jobs.create_job(session, REQUEST, None)
    second = jobs.create_job(session, REQUEST, None)
    a = jobs.claim_job(session, "worker-a")
    b = jobs.claim_job(session, "worker-b")
    assert (a.id, b.id) == (first.id, second.id)
    assert a.state == JobState.running and a.worker == "worker-a" and a.attempts == 1
    assert a.heartbeat_at is not None and a.started_at is not None
    assert jobs.claim_job(session, "worker-c") is None


def test_concurrent_claims_never_share_a_job(store_url: str) -> None:
    maker = get_sessionmaker(store_url)
    with maker() as s:
        made = {jobs.create_job(s, REQUEST, None).id for _ in range(12)}
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        with maker() as s:
            while (job := jobs.claim_job(s, name)) is not None:
                with lock:
                    claimed.append((job.id, name))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(job_id for job_id, _ in claimed)
    assert set(counts) == made and set(counts.values()) == {1}


def test_heartbeat_belongs_to_the_owner(session: Session) -> None:
    jobs.create_job(session, REQUEST, None)
    job = jobs.claim_job(session, "owner")
    before = job.heartbeat_at
    time.sleep(0.01)
    assert jobs.heartbeat(session, job.id, "owner") is True
    assert jobs.get_job(session, job.id).heartbeat_at > before
    assert jobs.heartbeat(session, job.id, "intruder") is False


def test_stale_job_is_requeued_and_claimed_again(session: Session) -> None:
    jobs.create_job(session, REQUEST, None)
    job = jobs.claim_job(session, "dead")
    assert jobs.requeue_stale(session, stale_after_s=60) == 0
    _age(session, job.id, seconds=120)
    assert jobs.requeue_stale(session, stale_after_s=60) == 1
    again = jobs.claim_job(session, "alive")
    assert again.id == job.id and again.worker == "alive" and again.attempts == 2
    assert again.started_at == job.started_at  # first start kept
    # the dead worker comes back: it no longer owns the job
    assert jobs.heartbeat(session, job.id, "dead") is False
    assert jobs.finish_job(session, job.id, "dead", JobState.succeeded) is False
    assert jobs.finish_job(session, job.id, "alive", JobState.succeeded) is True
    assert jobs.get_job(session, job.id).state == JobState.succeeded


def test_cancel_queued_running_and_finished(session: Session) -> None:
    queued = jobs.create_job(session, REQUEST, None)
    assert jobs.request_cancel(session, queued.id).state == JobState.cancelled
    assert jobs.claim_job(session, "w") is None
    assert jobs.request_cancel(session, queued.id).state == JobState.cancelled  # idempotent

    jobs.create_job(session, REQUEST, None)
    running = jobs.claim_job(session, "w")
    job = jobs.request_cancel(session, running.id)
    assert job.state == JobState.running and job.cancel_requested
    assert jobs.heartbeat(session, running.id, "w") is False  # tells the worker to stop
    assert jobs.finish_job(session, running.id, "w", JobState.cancelled)

    jobs.create_job(session, REQUEST, None)
    done = jobs.claim_job(session, "w")
    jobs.finish_job(session, done.id, "w", JobState.succeeded)
    with pytest.raises(jobs.JobConflict, match="succeeded"):
        jobs.request_cancel(session, done.id)
    with pytest.raises(KeyError):
        jobs.request_cancel(session, "missing")


def test_stale_job_with_cancel_request_ends_cancelled(session: Session) -> None:
    jobs.create_job(session, REQUEST, None)
    job = jobs.claim_job(session, "dead")
    jobs.request_cancel(session, job.id)
    _age(session, job.id, seconds=120)
    jobs.requeue_stale(session, stale_after_s=60)
    assert jobs.get_job(session, job.id).state == JobState.cancelled


def test_release_and_delete(session: Session) -> None:
    jobs.create_job(session, REQUEST, None)
    job = jobs.claim_job(session, "w")
    with pytest.raises(jobs.JobConflict, match="running"):
        jobs.delete_job(session, job.id)
    assert jobs.release_job(session, job.id, "w")
    assert jobs.get_job(session, job.id).state == JobState.queued
    jobs.delete_job(session, job.id)
    assert jobs.get_job(session, job.id) is None
    with pytest.raises(KeyError):
        jobs.delete_job(session, job.id)


def test_finish_needs_a_terminal_state(session: Session) -> None:
    jobs.create_job(session, REQUEST, None)
    job = jobs.claim_job(session, "w")
    with pytest.raises(ValueError, match="terminal"):
        jobs.finish_job(session, job.id, "w", JobState.queued)


def _age(session: Session, job_id: str, *, seconds: float) -> None:
    import datetime as dt

    old = jobs.utcnow() - dt.timedelta(seconds=seconds)
    session.execute(sa.update(Job).where(Job.id == job_id).values(heartbeat_at=old))
    session.commit()
