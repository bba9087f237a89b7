"""Helpers for the service tests: real processes on loopback ports, polling, a tiny study."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

KEY = "test-key-0123456789abcdef-aaaa"
OTHER_KEY = "test-key-0123456789abcdef-bbbb"
TINY = {
    "dataset": "synthetic:classes=3,per_class=20,size=32",
    "space": "small_data",
    "stop": "trials",  # exactly the trials asked for: the tests count them
    "trials": 2,
    "max_epochs": 1,
    "input_size": 32,
    "recommend": False,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(database_url: str, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTRANSFER_")}
    env.update(
        AUTOTRANSFER_DATABASE_URL=database_url,
        AUTOTRANSFER_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    for key, value in settings.items():
        env[f"AUTOTRANSFER_{key.upper()}"] = str(value)
    return env


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "autotransfer", *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL, to the process and its children (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


@contextmanager
def serve(env: dict[str, str], log: Path, *extra: str) -> Iterator[str]:
    """``autotransfer serve`` on a free loopback port; yields its base URL once it answers."""
    port = free_port()
    proc = spawn(["serve", "--host", "127.0.0.1", "--port", str(port), *extra], env, log)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 90, "the server to answer /healthz", every=0.3)
        yield base
    finally:
        stop(proc)


CHROMIUM = "/usr/bin/chromium"


class Browser:
    """Headless Chromium driven over the DevTools protocol (a websocket), one page."""

    def __init__(self, profile: Path) -> None:
        import json
        import urllib.request

        from websockets.sync.client import connect

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 60, "Chromium")
        port = int(port_file.read_text().split()[0])

        def page_url() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(wait_for(page_url, 30, "a Chromium page"), max_size=64 * 2**20)
        )
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        import json

        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self._id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        frame = self.call("Page.navigate", url=url).get("loaderId")
        assert frame, f"navigation to {url} did not start"
        wait_for(
            lambda: (
                self.eval("location.href") != "about:blank"
                and self.eval("document.readyState") == "complete"
            ),
            60,
            f"{url} to load",
        )

    def text(self) -> str:
        return self.eval("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: Path) -> Path:
        import base64

        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._stack.close()
        stop(self.proc)
