"""A cross-process lock per study: "count the trials, then ask for one" as one step."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator

import sqlalchemy
from filelock import FileLock

from autotransfer.errors import UserInputError
from autotransfer.storage._retry import is_transient, ride_out, storage_name
from autotransfer.storage._url import StorageURL


def _lock_key(study_name: str) -> int:
    return int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)


@functools.lru_cache(maxsize=16)
def _lock_engine(url: str) -> sqlalchemy.engine.Engine:
    # one small pool per database for the advisory lock, apart from Optuna's own sessions
    return sqlalchemy.create_engine(url, pool_size=1, max_overflow=4, pool_pre_ping=True)


def _locked(engine: sqlalchemy.engine.Engine, key: dict[str, int]) -> sqlalchemy.Connection:
    conn = engine.connect()
    try:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), key)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def study_lock(url: str | StorageURL, study_name: str) -> Iterator[None]:
    """Serialise one step across every process of a study.

    PostgreSQL: a session advisory lock (works across machines). SQLite and journal files:
    a lock file beside the database (all workers share that file system anyway). Other
    databases: a lock file in the working folder, which serialises one machine only.
    Taking the PostgreSQL lock rides out a server restart (``_retry.ride_out``).
    """
    url = StorageURL.parse(url)
    if url.kind == "postgresql":
        key = {"k": _lock_key(study_name)}
        conn = ride_out(lambda: _locked(_lock_engine(url.text), key), name=storage_name(url.text))
        try:
            yield
        finally:
            try:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), key)
                conn.commit()
            except sqlalchemy.exc.DBAPIError as exc:
                if not is_transient(exc):
                    raise
                # the server dropped the session (a restart), and its advisory locks with it
            finally:
                conn.close()
        return
    if url.in_memory:
        raise UserInputError(
            f"storage {url} is in memory: other processes cannot share it. Use a file "
            f"(sqlite:///autotransfer.db) or a PostgreSQL URL."
        )
    base = str(url.path) if url.path is not None else "autotransfer"
    with FileLock(f"{base}.{_lock_key(study_name) & 0xFFFFFFFF:08x}.lock"):
        yield
