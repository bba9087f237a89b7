"""The service's edges over real HTTP (``autotransfer serve`` in a subprocess): bodies that
cannot be echoed, bodies too large to read, keys checked before bodies, back-off after wrong
keys, offline docs, the dashboard's key pages, and stopping ``serve`` with its children."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import KEY, free_port, serve, service_env, spawn, stop, wait_for

AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"content-type": "application/json"}
MIB = 1024 * 1024
ROUTES = ["/v1/studies", "/v1/recommendations"]
# uncached deep fine-tuning: still running seconds after it started
SLOW = {
    "dataset": "synthetic:classes=3,per_class=80,size=48",
    "input_size": 48,
    "recommend": False,
    "cache": False,
    "trials": 20,
    "max_epochs": 5,
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("edges")
    env = service_env(f"sqlite:///{folder / 'service.db'}", api_keys=KEY, warm_catalog="false")
    with serve(env, folder / "service.log", "--no-worker") as url:
        yield url


def _client(base: str, address: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections leave from ``address`` (any of 127.0.0.0/8 reaches us)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base, transport=transport, timeout=30)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("body", "field", "echo"),
    [
        ('{"dataset": "digits", "timeout_s": NaN}', "timeout_s", "NaN"),
        ('{"dataset": "digits", "x": Infinity}', "x", "Infinity"),
        ('{"dataset": "digits", "seed": -Infinity}', "seed", "-Infinity"),
        ('{"dataset": "digits", "val_fraction": NaN}', "val_fraction", "NaN"),
    ],
)
def test_nan_and_infinity_are_422_not_500(
    base: str, route: str, body: str, field: str, echo: str
) -> None:
    r = httpx.post(base + route, content=body, headers={**AUTH, **JSON})
    assert r.status_code == 422, r.text
    errors = [e for e in r.json()["detail"] if e["loc"][-1] == field]
    assert errors and errors[0]["input"] == echo, r.text


def test_validation_errors_echo_at_most_a_few_hundred_characters(base: str) -> None:
    big = {"dataset": "digits", "colour": "x" * 200_000, "spec": "y" * 200_000}
    r = httpx.post(f"{base}/v1/studies", json=big, headers=AUTH)
    assert r.status_code == 422, r.text[:500]
    assert len(r.content) < 3000, len(r.content)
    inputs = {e["loc"][-1]: e["input"] for e in r.json()["detail"]}
    assert inputs["colour"].startswith('"xxxx') and "200002 characters, cut" in inputs["colour"]


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_keys_are_checked_before_the_body_is_read(base: str) -> None:
    ten_mb = b'{"dataset": "' + b"a" * (10 * MIB) + b'"}'
    for route in ROUTES:
        start = time.monotonic()
        r = httpx.post(base + route, content=ten_mb, headers=JSON)
        assert r.status_code == 401, r.text[:300]
        assert time.monotonic() - start < 1.0
        assert r.headers["www-authenticate"] == "Bearer"
        r = httpx.post(base + route, content=b"{not json", headers=JSON)
        assert r.status_code == 401, r.text  # not 422: the key comes first
        r = httpx.post(base + route, content=ten_mb, headers={**JSON, "Authorization": "Bearer x"})
        assert r.status_code == 403, r.text[:300]


def test_bodies_over_the_limit_are_413(base: str) -> None:
    ten_mb = b'{"dataset": "' + b"a" * (10 * MIB) + b'"}'
    start = time.monotonic()
    r = httpx.post(f"{base}/v1/studies", content=ten_mb, headers={**AUTH, **JSON})
    assert r.status_code == 413, r.text[:300]
    assert time.monotonic() - start < 1.0
    assert "AUTOTRANSFER_MAX_BODY_BYTES" in r.json()["detail"] and str(MIB) in r.json()["detail"]
    # streamed without a Content-Length: cut off once past the limit, while /healthz answers
    answers: list[float] = []

    def probe() -> None:
        for _ in range(5):
            t = time.monotonic()
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            answers.append(time.monotonic() - t)

    prober = threading.Thread(target=probe)
    prober.start()
    r = httpx.post(
        f"{base}/v1/recommendations", content=_chunks(10 * MIB), headers={**AUTH, **JSON}
    )
    prober.join()
    assert r.status_code == 413, r.text[:300]
    assert len(answers) == 5 and max(answers) < 1.0, answers
    # the login form and the dashboard paths are capped as well
    assert httpx.post(f"{base}/login", content=_chunks(2 * MIB)).status_code == 413
    # just under the limit the body is read and validated as usual
    r = httpx.post(
        f"{base}/v1/studies",
        json={"dataset": "digits", "colour": "a" * (MIB - 100)},
        headers=AUTH,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "colour"]


def test_wrong_keys_are_backed_off_per_client_address(base: str) -> None:
    """The default AUTOTRANSFER_AUTH_FAILURES is 10 a minute: bearer keys on the API, Basic
    passwords on the dashboard and the login form all count."""
    wrong_basic = {"Authorization": "Basic " + base64.b64encode(b"me:wrong").decode()}
    with _client(base, "127.0.0.3") as attacker, _client(base, "127.0.0.4") as user:
        for i in range(10):
            if i < 4:
                r = attacker.get("/v1/studies", headers={"Authorization": f"Bearer wrong-{i}"})
                assert r.status_code == 403, r.text
            elif i < 7:
                assert attacker.get("/api/studies", headers=wrong_basic).status_code == 401
            else:
                assert attacker.post("/login", data={"key": f"wrong-{i}"}).status_code == 403
        r = attacker.get("/v1/studies", headers={"Authorization": "Bearer wrong-again"})
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "127.0.0.3" in r.json()["detail"] and "AUTOTRANSFER_AUTH_FAILURES" in r.text
        # while backed off even the right key waits, from every door
        assert attacker.get("/v1/studies", headers=AUTH).status_code == 429
        assert attacker.post("/login", data={"key": KEY}).status_code == 429
        assert attacker.get("/api/studies", headers=AUTH).status_code == 429
        assert attacker.get("/healthz").status_code == 200
        # another client is not held back by those failures
        assert user.get("/v1/studies", headers=AUTH).status_code == 200
        r = user.get("/v1/studies", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 403
        assert user.post("/login", data={"key": KEY}).status_code == 303


def test_docs_load_their_assets_from_this_server(base: str) -> None:
    for page, kinds in [("/docs", {"javascript", "css"}), ("/redoc", {"javascript"})]:
        r = httpx.get(base + page)
        assert r.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", r.text)
        assert urls and not [u for u in urls if "//" in u], urls
        seen = set()
        for url in urls:
            asset = httpx.get(base + url)
            assert asset.status_code == 200, url
            seen |= {k for k in kinds if k in asset.headers["content-type"]}
        assert seen == kinds, (page, urls)


def test_dashboard_pages_say_what_happened_to_the_key(base: str) -> None:
    bad = {"Authorization": "Basic " + base64.b64encode(b"me:not-the-key").decode()}
    with _client(base, "127.0.0.5") as browser:
        r = browser.get("/dashboard", headers={**bad, "Accept": "text/html"})
        assert r.status_code == 401 and "not accepted" in r.text and "needs" not in r.text
        r = browser.get("/dashboard")
        assert r.status_code == 401 and "needs an API key" in r.text
        assert "Log out" not in browser.get("/login").text
        assert browser.post("/login", data={"key": KEY}).status_code == 303
        page = browser.get("/login").text
        assert 'action="/logout"' in page and "Log out" in page
        r = browser.post("/logout")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert "Log out" not in browser.get("/login").text
        assert browser.get("/api/studies").status_code == 401


def test_recommendation_probes_are_bounded_and_kept(base: str) -> None:
    """48 training images at 512 px (schemathesis's corner) took about 60 s on two cores in
    the API process: refused now before the probe; a repeated request is answered from the
    cache (the same ``signals.seconds`` shows nothing was measured again)."""
    body = {"dataset": "synthetic:classes=3,per_class=20,size=32", "input_size": 512}
    start = time.monotonic()
    r = httpx.post(f"{base}/v1/recommendations", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 422, r.text
    assert time.monotonic() - start < 5
    error = r.json()["detail"][0]
    assert error["loc"] == ["body", "sample_size"], error
    assert "48 images at input_size 512" in error["msg"] and "sample_size <= 16" in error["msg"]
    assert "AUTOTRANSFER_MAX_PROBE_PIXELS=4,194,304" in error["msg"]
    small = {**body, "input_size": 32, "sample_size": 16}
    first = httpx.post(f"{base}/v1/recommendations", json=small, headers=AUTH, timeout=120)
    assert first.status_code == 200, first.text
    again = httpx.post(f"{base}/v1/recommendations", json=small, headers=AUTH, timeout=120)
    assert again.json() == first.json()
    other = httpx.post(
        f"{base}/v1/recommendations", json={**small, "seed": 1}, headers=AUTH, timeout=120
    )
    assert other.status_code == 200
    assert other.json()["signals"]["seconds"] != first.json()["signals"]["seconds"]


def _group(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (zombies are gone for this purpose)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize(
    "with_job",
    [
        pytest.param(False, id="idle"),
        pytest.param(True, marks=pytest.mark.slow, id="with-a-running-job"),
    ],
)
def test_sigterm_to_serve_ends_it_with_its_children(tmp_path: Path, with_job: bool) -> None:
    """``serve`` with its job worker and the child building the backbone table (which an
    orphan kept waiting for ever): a SIGTERM to ``serve`` alone ends all of them within
    seconds. With a study running, the study goes back to the queue."""
    env = service_env(
        f"sqlite:///{tmp_path / 'service.db'}", api_keys=KEY, heartbeat_s=0.5, poll_s=0.3
    )
    log = tmp_path / "serve.log"
    port = free_port()
    proc = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 90, "the server")
        if with_job:
            job = httpx.post(f"{url}/v1/studies", json=SLOW, headers=AUTH).json()["id"]
            wait_for(lambda: _state(url, job) == "running", 90, "the worker to take the study")
        os.kill(proc.pid, signal.SIGTERM)
        start = time.monotonic()
        wait_for(lambda: not _group(proc.pid), 15, "serve and its children to end", every=0.1)
        took = time.monotonic() - start
        assert took < 10, took
        assert proc.wait(5) == 128 + signal.SIGTERM
        if with_job:
            with sqlite3.connect(tmp_path / "service.db") as db:
                (state,) = db.execute("SELECT state FROM autotransfer_jobs").fetchone()
            assert state == "queued", log.read_text()[-3000:]
    finally:
        stop(proc)  # also any orphans: they stay in serve's process group


@pytest.mark.parametrize(
    "with_job",
    [
        pytest.param(False, id="idle"),
        pytest.param(True, marks=pytest.mark.slow, id="with-a-running-job"),
    ],
)
def test_sigkill_to_serve_ends_its_children(tmp_path: Path, with_job: bool) -> None:
    """``serve`` killed outright runs no cleanup of its own: its job worker, the child
    building the backbone table and multiprocessing's resource tracker must end by
    themselves, within about a second. A running study still goes back to the queue."""
    env = service_env(
        f"sqlite:///{tmp_path / 'service.db'}", api_keys=KEY, heartbeat_s=0.5, poll_s=0.3
    )
    log = tmp_path / "serve.log"
    port = free_port()
    proc = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 90, "the server")
        if with_job:
            job = httpx.post(f"{url}/v1/studies", json=SLOW, headers=AUTH).json()["id"]
            wait_for(lambda: _state(url, job) == "running", 90, "the worker to take the study")
        children = [pid for pid in _group(proc.pid) if pid != proc.pid]
        assert children, "serve started no child processes"
        os.kill(proc.pid, signal.SIGKILL)
        start = time.monotonic()
        wait_for(lambda: not _group(proc.pid), 10, "serve's children to end", every=0.05)
        took = time.monotonic() - start
        assert took < 2, f"{took:.2f} s"
        if with_job:
            with sqlite3.connect(tmp_path / "service.db") as db:
                (state,) = db.execute("SELECT state FROM autotransfer_jobs").fetchone()
            assert state == "queued", log.read_text()[-3000:]
    finally:
        stop(proc)  # also any orphans: they stay in serve's process group


# a parent that starts a pool child as the catalog does, prints the child's pid, then keeps
# it busy in a regular expression that holds the GIL for ever: a thread in the child that
# checks on the parent never runs again
_BUSY_CHILD = """
import multiprocessing, os, re
from concurrent.futures import ProcessPoolExecutor
from service.lifecycle import exit_with_parent

with ProcessPoolExecutor(
    1, mp_context=multiprocessing.get_context("spawn"),
    initializer=exit_with_parent, initargs=(os.getpid(),),
) as pool:
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(re.match, r"(a+)+$", "a" * 64 + "b").result()
"""


def test_a_child_busy_in_c_code_ends_with_its_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _BUSY_CHILD],
        stdout=subprocess.PIPE,
        start_new_session=True,
        cwd=tmp_path,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(0.5)  # into the expression
        os.kill(parent.pid, signal.SIGKILL)
        start = time.monotonic()
        wait_for(lambda: child not in _group(parent.pid), 10, "the child to end", every=0.05)
        assert time.monotonic() - start < 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def _state(url: str, job: str) -> str:
    return str(httpx.get(f"{url}/v1/studies/{job}", headers=AUTH).json()["state"])


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
