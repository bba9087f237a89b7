"""How ``serve`` and its child processes end together.

``serve`` starts a job worker and, at start-up, a short-lived process that builds the
backbone table. On SIGTERM or SIGINT the workers are told to stop at once (each gives its job
back to the queue), uvicorn then drains requests for at most ``SHUTDOWN_GRACE_S``, and every
child still running is ended before ``serve`` exits. A child also ends by itself when its
parent is gone, even when the parent was killed outright (SIGKILL) and ran none of this: on
Linux the kernel signals it (``PR_SET_PDEATHSIG``), elsewhere a thread watches the parent.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

SHUTDOWN_GRACE_S = 5  # in-flight requests get this long after a signal, then are cancelled
STOP_TIMEOUT_S = 10.0  # a child that has not ended this long after SIGTERM is killed
WATCH_S = 0.1  # how often a child without the kernel's notice checks that its parent lives
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _signal_on_parent_death(signum: int) -> bool:
    """Ask the kernel for ``signum`` when the thread that started this process ends (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def exit_with_parent(parent: int | None = None) -> None:
    """In a child process: SIGTERM to itself as soon as ``parent`` (default: the current
    parent) is gone, even when it was killed outright. Usable as a pool's ``initializer``.

    On Linux the kernel sends the signal the moment the parent dies, whatever this process
    is doing (a thread that checks would wait for the GIL while a long import or a C call
    holds it). The kernel goes by the parent's *thread* that started this child, though: start
    it from the main thread, or from a thread that waits for it to end (a process pool used
    in a ``with`` block), never from one that may end first. Elsewhere a daemon thread checks
    every ``WATCH_S``.
    """
    parent = parent or os.getppid()
    kernel = _signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != parent:  # gone already, before the kernel was asked
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if kernel:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def terminate(processes: list[Any]) -> None:
    """SIGTERM to each live process (``multiprocessing`` processes)."""
    for proc in processes:
        if proc.is_alive() and proc.pid:
            os.kill(proc.pid, signal.SIGTERM)


def end_children(timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every child this process started through ``multiprocessing`` (job workers, a
    process pool), wait up to ``timeout`` for all of them, then SIGKILL the rest."""
    children = multiprocessing.active_children()
    terminate(children)
    deadline = time.monotonic() + timeout
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.is_alive():
            child.kill()
            child.join()


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_server(app: Any, host: str, port: int, on_signal: Callable[[], None]) -> None:
    """uvicorn on ``host:port`` until SIGTERM or SIGINT; ``on_signal`` runs as the first one
    arrives. Returns (or raises SystemExit / KeyboardInterrupt) after uvicorn's shutdown, so
    that the caller's ``finally`` can end its children."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if not self.should_exit:
                on_signal()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", timeout_graceful_shutdown=SHUTDOWN_GRACE_S
    )
    # uvicorn re-raises the signal it stopped for under the handler it found: with the
    # default one a SIGTERM would kill this process before any cleanup
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
