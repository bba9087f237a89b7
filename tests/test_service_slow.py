"""Heavier service checks (``-m slow``): schemathesis over the OpenAPI schema, and a headless
Chromium that logs in to the dashboard and finds the submitted study."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import CHROMIUM, KEY, TINY, Browser, serve, service_env, wait_for

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {KEY}"}


@contextmanager
def _server(base: Path, *extra: str) -> Iterator[dict[str, Any]]:
    env = service_env(f"sqlite:///{base / 'service.db'}", api_keys=KEY, poll_s=0.3)
    with serve(env, base / "service.log", *extra) as url:
        yield {"url": url, "dir": base}


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    """The command documented in docs/service.md, against a server without a worker (the
    studies it submits stay queued)."""
    with _server(tmp_path, "--no-worker") as server:
        _schemathesis(server)
        # the backbone table (built at start-up in a child process) is complete and right
        r = httpx.get(f"{server['url']}/v1/backbones", headers=AUTH, timeout=300)
        backbones = {b["name"]: b for b in r.json()["data"]}
        assert backbones["efficientnet_lite0"]["blocks"] == 17
        assert backbones["resnet18"]["blocks"] == 9
        assert "DEFAULT" in backbones["efficientnet_lite0"]["weights"]
        assert r.json()["count"] == len(backbones) > 50


SCHEMATHESIS_BOUND_S = 600  # docs/service.md records the bound and a run's figures


def _schemathesis(server: dict[str, Any]) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    start = time.monotonic()
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{server['url']}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {KEY}",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--request-timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=SCHEMATHESIS_BOUND_S,
        cwd=server["dir"],  # schemathesis keeps a cache folder in its working directory
    )
    took = time.monotonic() - start
    # its summary, for the figures in docs/service.md (shown with -s)
    print(f"schemathesis took {took:.0f} s:\n" + "\n".join(result.stdout.splitlines()[-25:]))
    assert result.returncode == 0, result.stdout[-6000:]
    assert "Server error" not in result.stdout


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_browser_logs_in_and_sees_the_study_on_the_dashboard(tmp_path: Path) -> None:
    with _server(tmp_path) as server:  # with its embedded worker
        _browse(server["url"], tmp_path)


def _browse(url: str, tmp_path: Path) -> None:
    body = {**TINY, "study_name": "seen-in-browser"}
    r = httpx.post(f"{url}/v1/studies", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    wait_for(
        lambda: httpx.get(f"{url}/v1/studies/{job}", headers=AUTH).json()["state"] == "succeeded",
        180,
        "the study to finish",
    )
    browser = Browser(tmp_path / "profile")
    try:
        browser.goto(f"{url}/dashboard")  # no key yet: sent to the login form
        assert browser.eval("location.pathname") == "/login", browser.text()
        assert "API key" in browser.text() and "seen-in-browser" not in browser.text()
        browser.eval(
            f"document.getElementById('key').value = {KEY!r};"
            "document.querySelector('form').submit(); true"
        )
        wait_for(
            lambda: (
                browser.eval("location.pathname") == "/dashboard"
                and "seen-in-browser" in browser.text()
            ),
            90,
            "the dashboard to list the study",
        )
        shot = browser.screenshot(tmp_path / "dashboard.png")
        assert shot.stat().st_size > 10_000
        keep = os.environ.get("AUTOTRANSFER_TEST_ARTIFACTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / "dashboard.png")
        # the study page itself, reached through the SPA's own link
        browser.eval(
            "[...document.querySelectorAll('a')].find(a => a.innerText.includes("
            "'seen-in-browser')).click(); true"
        )
        wait_for(
            lambda: "/dashboard/studies/" in browser.eval("location.pathname"), 30, "study page"
        )
        browser.screenshot(tmp_path / "study.png")
    finally:
        browser.close()


def test_service_on_postgresql_runs_a_study(postgres_url: str, tmp_path: Path) -> None:
    """The deployment setting: job store and Optuna storage in one PostgreSQL database."""
    env = service_env(postgres_url, api_keys=KEY, poll_s=0.3)
    with serve(env, tmp_path / "service.log") as url:  # with its embedded worker
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["status"] == "ok", ready
        r = httpx.post(f"{url}/v1/studies", json={**TINY, "study_name": "on-pg"}, headers=AUTH)
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        body = wait_for(
            lambda: (
                (b := httpx.get(f"{url}/v1/studies/{job}", headers=AUTH).json())["state"]
                in ("succeeded", "failed")
                and b
            ),
            180,
            "the study to finish",
        )
        assert body["state"] == "succeeded", body
        assert body["progress"]["finished"] == 2
