"""Executors: where a search's trials run. The engine decides; an executor only runs trials."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from autotransfer.errors import missing_extra
from autotransfer.search._backends import BACKENDS
from autotransfer.search._session import SearchSession


class Executor(Protocol):
    """Runs the trials of one study; constructed without arguments.

    ``run(session, should_stop)`` is called once per ``run_search``, in the calling process,
    after the engine has opened (or resumed) the study, checked that it holds the same
    search and enqueued the seeds. It must:

    - obtain every trial from ``session.ask()`` (which counts finished trials under a
      cross-process lock, enforces the budget, the timeout and a cancel, and gives enqueued
      seeds first), wait and ask again on ``WAIT``, and start no trial after it returns
      ``None``; a process that runs trials elsewhere opens its own session with
      ``SearchSession.open`` on the same prepared request;
    - train the ticket's configuration (``session.config(ticket)``) and hand what happened
      to the session, which writes every record: ``session.started`` where it runs,
      ``session.epoch`` after each epoch, then exactly one of ``completed``, ``pruned``,
      ``failed`` or ``cancelled``;
    - stop a running trial at its next epoch once ``should_stop()`` is true (a trial whose
      last epoch is done completes instead), and never let one trial's exception end the
      study;
    - return once no trial of this run is running. Interrupts (Ctrl+C) propagate, leaving
      the study resumable by running the same search again.

    tests/test_backend_contract.py runs the same search on every registered backend and
    checks that the records are the same.
    """

    def run(self, session: SearchSession, should_stop: Callable[[], bool]) -> None: ...


def executor(name: str) -> Executor:
    """The executor registered as ``name`` in ``BACKENDS``, imported now."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, but got {name!r}.")
    module, _, cls = BACKENDS[name].partition(":")
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise missing_extra(exc, f"the {name} backend") from None
    return getattr(found, cls)()
