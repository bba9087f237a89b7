"""The job store's table and engine; it lives in the same database as the Optuna storage."""

from __future__ import annotations

import datetime as dt
import enum
import functools

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from autotransfer.storage import StorageURL


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)  # stored naive, always UTC


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = (JobState.succeeded, JobState.failed, JobState.cancelled)


class Base(DeclarativeBase):
    pass


class Job(Base):
    """One submitted search. ``request`` holds the validated body (JSON), never a pickle."""

    __tablename__ = "autotransfer_jobs"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    study_name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    state: Mapped[str] = mapped_column(sa.String(16), index=True, default=JobState.queued)
    request: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime, default=utcnow, index=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    error: Mapped[str | None] = mapped_column(sa.Text)


@functools.lru_cache(maxsize=8)
def get_engine(url: str | StorageURL) -> sa.Engine:
    """One engine per database URL per process; creates the job table if missing."""
    kwargs: dict[str, object] = {"pool_pre_ping": True}
    url = StorageURL.parse(url)
    if url.kind == "sqlite":
        # concurrent writers wait for SQLite's lock instead of failing at once
        kwargs = {"connect_args": {"timeout": 60, "check_same_thread": False}}
    engine = sa.create_engine(url.text, **kwargs)
    try:
        Base.metadata.create_all(engine)
    except sa.exc.DatabaseError:
        # another process created the table between our check and our CREATE
        Base.metadata.create_all(engine)
    return engine


@functools.lru_cache(maxsize=8)
def get_sessionmaker(url: str | StorageURL) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)
