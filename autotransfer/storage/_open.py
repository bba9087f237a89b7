"""Open an Optuna storage for a ``StorageURL``; read-only callers never create one."""

from __future__ import annotations

from typing import Any

import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from autotransfer.errors import UserInputError
from autotransfer.storage._retry import RetryingRDBStorage, StorageUnavailable, is_transient
from autotransfer.storage._url import StorageURL


def open_storage(
    url: str | StorageURL,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    create: bool = True,
    retry_s: float | None = None,
) -> BaseStorage:
    """The Optuna storage at ``url``.

    RDB storages given a ``heartbeat_interval`` record heartbeats, so the trials of a killed
    worker are failed after ``grace_period`` seconds and their slots freed. ``create=False``
    (every command that only reads) refuses a SQLite or journal file that does not exist
    instead of creating an empty one at a mistyped path.

    ``retry_s`` (a running search): every call on a database server that went away (a
    restart) is retried with back-off for up to that long (``_retry.RetryingRDBStorage``);
    by default a call fails at once. A database that does not answer when opened raises
    :class:`StorageUnavailable` (a ``UserInputError``: the CLI prints it on one line).
    """
    url = StorageURL.parse(url)
    if not create and url.path is not None and not url.path.exists():
        raise UserInputError(
            f"No storage at {url.path} ({url}): nothing was ever stored there. Check the path; "
            f"a search creates the file, commands that only read never do."
        )
    if url.kind == "journal":
        assert url.path is not None
        url.path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(url.path)))
    engine_kwargs: dict[str, object] = {}
    if url.kind == "sqlite":
        # several processes on one SQLite file wait for the write lock instead of failing
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        # a pooled connection that a server restart dropped is replaced, not used and failed
        engine_kwargs["pool_pre_ping"] = True
    kwargs: dict[str, Any] = {
        "engine_kwargs": engine_kwargs,
        "heartbeat_interval": heartbeat_interval,
        "grace_period": grace_period,
    }
    try:
        if retry_s and url.kind != "sqlite":  # a file does not restart; its lock waits above
            return RetryingRDBStorage(url.text, retry_s=retry_s, **kwargs)
        return RDBStorage(url.text, **kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        error = StorageUnavailable if is_transient(exc) else UserInputError
        raise error(
            f"Cannot open storage {url}: {reason}. Check that the database exists and answers "
            f"(for PostgreSQL: `psql '{url.text.replace('+psycopg', '')}'`)."
        ) from None
