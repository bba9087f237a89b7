"""Job-store operations: create, claim, heartbeat, re-queue stale jobs, cancel, finish.

Every state change is one conditional UPDATE (``… WHERE state = 'queued'`` and the like), so
two workers or an API call racing a worker never both win; ``claim`` additionally locks its
candidate row with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite has one writer at a
time, and the conditional UPDATE decides there).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db import TERMINAL, Job, JobState, utcnow


def _changed(session: Session, statement: sa.Executable) -> int:
    """Rows an UPDATE or DELETE changed: how a conditional statement tells who won."""
    return cast("sa.CursorResult[Any]", session.execute(statement)).rowcount


class JobConflict(Exception):
    """The job is in a state that forbids the operation (e.g. deleting a running job)."""


def create_job(session: Session, request: dict[str, Any], study_name: str | None) -> Job:
    job_id = uuid.uuid4().hex
    job = Job(
        id=job_id,
        study_name=study_name or f"job-{job_id[:12]}",
        state=JobState.queued,
        request=json.dumps(request, sort_keys=True),
        created_at=utcnow(),
        attempts=0,
        cancel_requested=False,
    )
    session.add(job)
    try:
        session.commit()
    except sa.exc.IntegrityError:
        session.rollback()
        raise JobConflict(
            f"study_name {job.study_name!r} is already used by another job; choose another "
            "name or leave it out for a generated one."
        ) from None
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id, populate_existing=True)


def list_jobs(
    session: Session, *, state: str | None = None, offset: int = 0, limit: int = 20
) -> tuple[list[Job], int]:
    where = [Job.state == state] if state else []
    count = session.scalar(sa.select(sa.func.count()).select_from(Job).where(*where)) or 0
    rows = session.scalars(
        sa.select(Job)
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), count


def claim_job(session: Session, worker: str) -> Job | None:
    """Atomically take the oldest queued job for ``worker``; None when there is none."""
    while True:
        candidate = session.scalars(
            sa.select(Job.id)
            .where(Job.state == JobState.queued)
            .order_by(Job.created_at, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if candidate is None:
            session.rollback()
            return None
        now = utcnow()
        won = _changed(
            session,
            sa.update(Job)
            .where(Job.id == candidate, Job.state == JobState.queued)
            .values(
                state=JobState.running,
                worker=worker,
                started_at=sa.func.coalesce(Job.started_at, now),
                heartbeat_at=now,
                attempts=Job.attempts + 1,
            ),
        )
        session.commit()
        if won == 1:
            return get_job(session, candidate)
        # another worker took it between our SELECT and UPDATE (SQLite): try the next one


def heartbeat(session: Session, job_id: str, worker: str) -> bool:
    """Record that ``worker`` is alive. False when the job is no longer this worker's to run
    (re-queued after a stall, or cancellation requested): the worker should stop."""
    owned = _changed(
        session,
        sa.update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.state == JobState.running)
        .values(heartbeat_at=utcnow()),
    )
    session.commit()
    if owned != 1:
        return False
    job = get_job(session, job_id)
    return job is not None and not job.cancel_requested


def requeue_stale(session: Session, stale_after_s: float) -> int:
    """Give jobs whose worker went silent back to the queue (or finish their cancellation)."""
    cutoff = utcnow() - dt.timedelta(seconds=stale_after_s)
    stale = (Job.state == JobState.running) & (Job.heartbeat_at < cutoff)
    cancelled = _changed(
        session,
        sa.update(Job)
        .where(stale, Job.cancel_requested.is_(True))
        .values(state=JobState.cancelled, worker=None, finished_at=utcnow()),
    )
    requeued = _changed(
        session,
        sa.update(Job)
        .where(stale, Job.cancel_requested.is_(False))
        .values(state=JobState.queued, worker=None, heartbeat_at=None),
    )
    session.commit()
    return cancelled + requeued


def release_job(session: Session, job_id: str, worker: str) -> bool:
    """Give a job back to the queue at once (its worker is shutting down cleanly)."""
    done = _changed(
        session,
        sa.update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.state == JobState.running)
        .values(state=JobState.queued, worker=None, heartbeat_at=None),
    )
    session.commit()
    return done == 1


def request_cancel(session: Session, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one is asked to stop (its worker sees it
    at its next heartbeat, between trials and at the current trial's next epoch)."""
    now = utcnow()
    _changed(
        session,
        sa.update(Job)
        .where(Job.id == job_id, Job.state == JobState.queued)
        .values(state=JobState.cancelled, finished_at=now, cancel_requested=True),
    )
    _changed(
        session,
        sa.update(Job)
        .where(Job.id == job_id, Job.state == JobState.running)
        .values(cancel_requested=True),
    )
    session.commit()
    job = get_job(session, job_id)
    if job is None:
        raise KeyError(job_id)
    if job.state in TERMINAL and not job.cancel_requested:
        raise JobConflict(f"job {job_id} already ended as {job.state}; nothing to cancel.")
    return job


def finish_job(
    session: Session, job_id: str, worker: str, state: JobState, error: str | None = None
) -> bool:
    """Record how ``worker``'s run ended; False when the job was taken from it meanwhile."""
    if state not in TERMINAL:
        raise ValueError(f"finish_job needs a terminal state {TERMINAL}, but got {state=}.")
    done = _changed(
        session,
        sa.update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.state == JobState.running)
        .values(state=state, finished_at=utcnow(), error=error and error[:4000]),
    )
    session.commit()
    return done == 1


def delete_job(session: Session, job_id: str) -> Job:
    """Remove a job that is not running; returns the removed row."""
    job = get_job(session, job_id)
    if job is None:
        raise KeyError(job_id)
    gone = _changed(session, sa.delete(Job).where(Job.id == job_id, Job.state != JobState.running))
    session.commit()
    if gone != 1:
        raise JobConflict(
            f"job {job_id} is running; cancel it first (POST /v1/studies/{job_id}/cancel), "
            "then delete it once it has stopped."
        )
    return job
