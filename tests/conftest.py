"""Shared fixtures: a throw-away PostgreSQL database and small real search settings."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import pytest

# Rich wraps at the terminal width; a wide virtual terminal keeps messages on one line so the
# CLI tests can look for whole paths and sentences.
os.environ["COLUMNS"] = "250"
# Searches and `train` cache frozen features by default; keep the tests' caches out of the
# home folder (subprocesses inherit the variable).
os.environ["AUTOTRANSFER_CACHE_DIR"] = tempfile.mkdtemp(prefix="autotransfer-test-features-")

PG_HOST = os.environ.get("AUTOTRANSFER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("AUTOTRANSFER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("AUTOTRANSFER_TEST_PG_USER", "postgres")


def _admin_connect():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=3,
    )


@pytest.fixture(scope="session", autouse=True)
def _run_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test, and every process it starts, works in a throw-away folder: what a search
    writes in its working folder by default (``autotransfer-artifacts/`` for a server's
    studies, ``ray_results/``, plots, ``autotransfer.db``) never lands in the checkout."""
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the local server, dropped afterwards.

    Skips only when no server answers; CI sets AUTOTRANSFER_REQUIRE_POSTGRES=1 to turn
    that skip into a failure.
    """
    import psycopg

    name = f"autotransfer_test_{uuid.uuid4().hex[:12]}"
    try:
        with _admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL server answers at {PG_HOST}:{PG_PORT} ({exc})"
        if os.environ.get("AUTOTRANSFER_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
