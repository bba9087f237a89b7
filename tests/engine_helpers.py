"""Driving the engine without training: an executor's calls with made-up trial ends, for
tests of the search policy (tests/test_climb.py, tests/test_skewed.py)."""

from __future__ import annotations

from collections.abc import Callable

from autotransfer.finetune import TrialConfig
from autotransfer.search import SearchSession, Ticket
from autotransfer.search._trial import EpochReport, TrialEnd


def drive(
    session: SearchSession,
    outcome: Callable[[TrialConfig], tuple[float, float]],
    *,
    limit: int = 40,
) -> list[Ticket]:
    """Ask and finish trials as an executor would until the search stops; each trial ends
    after one epoch with ``outcome(config)`` = (score, training seconds). Returns the
    tickets in the order they ran."""
    ran: list[Ticket] = []
    for _ in range(limit):
        ticket = session.ask()
        if ticket is None:
            return ran
        assert isinstance(ticket, Ticket), ticket
        session.started(ticket, worker="test:0")
        score, seconds = outcome(session.config(ticket))
        session.epoch(ticket, EpochReport(1, score, seconds, 1000, val_score=score))
        session.completed(ticket, TrialEnd(score, 1, score, seconds, best_val_score=score))
        ran.append(ticket)
    raise AssertionError(f"the search did not stop within {limit} trials")
