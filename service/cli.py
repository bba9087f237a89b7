"""``autotransfer serve`` and ``autotransfer worker``, registered through the entry-point group
``autotransfer.commands`` so that the library never imports the service."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from service.lifecycle import STOP_TIMEOUT_S, end_children, exit_with_parent, run_server, terminate

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

    from service.settings import Settings


def _require_service(command: str) -> None:
    """One line and exit 2 when the ``service`` extra is not installed (the commands are
    registered with the library's CLI either way)."""
    from autotransfer.cli import fail as _fail
    from autotransfer.errors import missing_extra

    try:
        import fastapi  # noqa: F401
        import pydantic_settings  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        _fail(str(missing_extra(exc, f"autotransfer {command}")))


def _settings(dev: bool) -> Settings:
    from pydantic import ValidationError

    from autotransfer.cli import fail as _fail
    from service.settings import Settings

    if dev:
        os.environ["AUTOTRANSFER_DEV"] = "1"
    try:
        return Settings()
    except ValidationError as exc:
        _fail("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()))


def _worker_main(dev: bool, parent: int | None = None) -> None:
    """One worker process: poll the job store until SIGTERM/SIGINT."""
    import warnings

    warnings.filterwarnings("ignore", message=".*experimental.*")
    if not logging.getLogger().handlers:  # a spawned child: the command's setup did not run
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("service").setLevel(logging.INFO)
    if parent is not None:
        # a worker started by ``serve`` or ``worker --processes`` ends with its parent, even
        # one killed outright; SIGTERM gives its job back to the queue
        exit_with_parent(parent)
    from service.settings import Settings
    from service.worker import Worker

    if dev:
        os.environ["AUTOTRANSFER_DEV"] = "1"
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        # the running job is given back to the queue (Worker.run_job); a second signal must
        # not interrupt that
        if not stop.is_set():
            stop.set()
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    with contextlib.suppress(KeyboardInterrupt):
        Worker(Settings()).run_forever(stop)


def _start_workers(count: int, dev: bool) -> list[SpawnProcess]:
    ctx = mp.get_context("spawn")  # torch and forked threads do not mix
    procs = [
        ctx.Process(
            target=_worker_main, args=(dev, os.getpid()), name=f"autotransfer-job-worker-{i}"
        )
        for i in range(count)
    ]
    for proc in procs:
        proc.start()
    return procs


def _stop_workers(procs: list[SpawnProcess]) -> None:
    terminate(procs)
    for proc in procs:
        proc.join(timeout=STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()


DevOpt = Annotated[
    bool, typer.Option("--dev", help="development mode: no API key needed (trusted machine)")
]


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="run a job worker beside the API")
    ] = True,
    dev: DevOpt = False,
) -> None:
    """Serve the HTTP API and the dashboard; by default with one job worker process."""
    _require_service("serve")
    from service.app import create_app

    settings = _settings(dev)
    app = create_app(settings)
    procs = _start_workers(1, dev) if worker else []
    try:
        run_server(app, host, port, on_signal=lambda: terminate(procs))
    finally:
        end_children()  # the workers, and the process building the backbone table


def worker(
    processes: Annotated[int, typer.Option(min=1, max=64, help="worker processes")] = 1,
    dev: DevOpt = False,
) -> None:
    """Run job workers that take queued studies from the job store and search them."""
    _require_service("worker")
    settings = _settings(dev)
    if processes == 1:
        _worker_main(settings.dev)
        return
    procs = _start_workers(processes, settings.dev)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        _stop_workers(procs)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
