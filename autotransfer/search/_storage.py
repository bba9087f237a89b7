"""Storage URLs → Optuna storages, and a cross-process lock per study."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy
from filelock import FileLock
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from autotransfer.errors import UserInputError

DEFAULT_STORAGE = "sqlite:///autotransfer.db"
_JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


def is_journal(url: str) -> bool:
    return url.startswith("journal://") or url.endswith(_JOURNAL_SUFFIXES)


def journal_path(url: str) -> Path:
    return Path(url.removeprefix("journal://"))


def make_storage(
    url: str, *, heartbeat_interval: int | None = 10, grace_period: int | None = 60
) -> BaseStorage:
    """An Optuna storage for ``url``: ``sqlite:///…``, ``postgresql+psycopg://…``, or a journal
    file (``journal:///path/study.log`` or any path ending in .log/.jsonl).

    RDB storages get heartbeats, so trials of a killed worker are failed after
    ``grace_period`` seconds and their slots freed for the resumed study.
    """
    if is_journal(url):
        path = journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise UserInputError(
            f"storage must be a database URL (sqlite:///file.db, postgresql+psycopg://user@host/db)"
            f" or a journal file (journal:///path/file.log), but got {url!r}."
        )
    engine_kwargs: dict[str, object] = {}
    if url.startswith("sqlite"):
        # several processes on one SQLite file wait for the write lock instead of failing
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
        )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise UserInputError(f"Cannot open storage {url!r}: {exc}") from exc


def _lock_key(study_name: str) -> int:
    return int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)


@functools.lru_cache(maxsize=16)
def _lock_engine(url: str) -> sqlalchemy.engine.Engine:
    # one small pool per database for the advisory lock, apart from Optuna's own sessions
    return sqlalchemy.create_engine(url, pool_size=1, max_overflow=4, pool_pre_ping=True)


@contextlib.contextmanager
def study_lock(url: str, study_name: str) -> Iterator[None]:
    """Serialise "count the trials, then ask for one" across every process of a study.

    PostgreSQL: a session advisory lock (works across machines). SQLite and journal files:
    a lock file beside the database (all workers share that file system anyway).
    """
    if not is_journal(url) and sqlalchemy.engine.make_url(url).get_backend_name() == "postgresql":
        key = {"k": _lock_key(study_name)}
        with _lock_engine(url).connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), key)
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), key)
                conn.commit()
        return
    if is_journal(url):
        base = journal_path(url)
    else:
        database = sqlalchemy.engine.make_url(url).database
        if not database or database == ":memory:":
            raise UserInputError(
                f"storage {url!r} is in memory: other processes cannot share it. Use a file "
                f"(sqlite:///autotransfer.db) or a PostgreSQL URL."
            )
        base = Path(database)
    with FileLock(f"{base}.{_lock_key(study_name) & 0xFFFFFFFF:08x}.lock"):
        yield


def study_names(url: str) -> list[str]:
    return optuna.get_all_study_names(make_storage(url, heartbeat_interval=None, grace_period=None))
