"""Open an Optuna storage for a ``StorageURL``; read-only callers never create one."""

from __future__ import annotations

import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from autotransfer.errors import UserInputError
from autotransfer.storage._url import StorageURL


def open_storage(
    url: str | StorageURL,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    create: bool = True,
) -> BaseStorage:
    """The Optuna storage at ``url``.

    RDB storages given a ``heartbeat_interval`` record heartbeats, so the trials of a killed
    worker are failed after ``grace_period`` seconds and their slots freed. ``create=False``
    (every command that only reads) refuses a SQLite or journal file that does not exist
    instead of creating an empty one at a mistyped path.
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
        engine_kwargs["pool_pre_ping"] = True
    try:
        return RDBStorage(
            url.text,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
        )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(
            f"Cannot open storage {url}: {reason}. Check that the database exists and answers "
            f"(for PostgreSQL: `psql '{url.text.replace('+psycopg', '')}'`)."
        ) from None
