"""Riding out a database that is briefly away (a restart, a fail-over).

A running search must not lose a trial, nor its heartbeat, because PostgreSQL restarted under
it: :class:`RetryingRDBStorage` retries every storage call that failed on a lost or refused
connection, with back-off, for up to ``retry_s`` seconds, and says so in one log line per
outage (and one when the database answers again). Whatever only reads — the CLI's listings,
the HTTP API — fails at once instead, and the API answers 503 (:func:`is_transient` tells).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy
import tenacity
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat

from autotransfer.errors import UserInputError

log = logging.getLogger(__name__)
T = TypeVar("T")

RIDE_OUT_S = 120.0
"""How long a running search waits for its database to come back before a call fails."""


class StorageUnavailable(UserInputError):
    """The database did not answer (refused, dropped or restarting): maybe only for now."""


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it: Optuna wraps database errors in
    ``StorageInternalError``) says the database is away rather than that the call was wrong:
    a refused, dropped or invalidated connection, a server shutting down or starting up."""
    for cause in _causes(exc):
        if isinstance(cause, StorageUnavailable):
            return True
        if isinstance(cause, sqlalchemy.exc.DBAPIError):
            return cause.connection_invalidated or isinstance(
                cause, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
            )
    return False


def error_line(exc: BaseException) -> str:
    """The database's own reason, on one line (``OperationalError: … Connection refused``),
    not the wrapper's generic message."""
    chain = _causes(exc)
    cause = next((c for c in chain if isinstance(c, sqlalchemy.exc.DBAPIError)), chain[-1])
    if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.orig is not None:
        cause = cause.orig
    text = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
    return f"{type(cause).__name__}: {text}"[:300] if text else type(cause).__name__


def storage_name(url: str) -> str:
    """``storage <url>`` as logs may show it (no password)."""
    try:
        return f"storage {sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)}"
    except sqlalchemy.exc.ArgumentError:
        return "the storage"


class _Outages:
    """Since when each database is away, so that many threads waiting for one database
    log its outage once, and its return once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}

    def away(self, name: str, exc: BaseException | None, budget_s: float) -> None:
        with self._lock:
            if name in self._since:
                return
            self._since[name] = time.monotonic()
        reason = error_line(exc) if exc is not None else "no answer"
        log.warning("%s is unavailable (%s); retrying for up to %g s", name, reason, budget_s)

    def back(self, name: str) -> None:
        if name not in self._since:  # the common case, without the lock
            return
        with self._lock:
            since = self._since.pop(name, None)
        if since is not None:
            log.warning("%s answers again after %.0f s", name, time.monotonic() - since)


_outages = _Outages()


def ride_out(call: Callable[[], T], *, name: str, budget_s: float = RIDE_OUT_S) -> T:
    """``call()``, retried with back-off (0.25 s doubling up to 4 s) while it fails because
    the database ``name`` (as logs say it, e.g. :func:`storage_name`) is away, for at most
    ``budget_s`` s; then its error is raised. Any other error is raised at once."""

    def away(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        _outages.away(name, exc, budget_s)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_exponential(multiplier=0.25, max=4),
        stop=tenacity.stop_after_delay(budget_s),
        before_sleep=away,
        reraise=True,
    )
    result = retrying(call)
    _outages.back(name)
    return result


# Every call Optuna makes on an RDB storage: the public storage and heartbeat API, and the
# private methods its caching layer (optuna.storages._CachedStorage) calls on its backend.
_PUBLIC = {
    name
    for base in (BaseStorage, BaseHeartbeat)
    for name, value in vars(base).items()
    if callable(value) and not name.startswith("_")
}
_PRIVATE = {
    "_create_new_trial",
    "_set_trial_param",
    "_get_best_trial_id",
    "_get_trials",
    "_get_stale_trial_ids",
}
RETRIED = tuple(sorted(name for name in _PUBLIC | _PRIVATE if hasattr(RDBStorage, name)))

_inside = threading.local()  # a retried call that calls another retries once, as a whole


class RetryingRDBStorage(RDBStorage):
    """An Optuna RDB storage whose calls ride out a database restart (:func:`ride_out`).

    Writes are retried too: a call that failed on a lost connection was rolled back, so
    running it again records it once (a commit whose answer was lost may have landed; Optuna
    then refuses the repeated state change, e.g. a second tell, which the engine logs and
    tolerates). Pickles like ``RDBStorage`` (``retry_s`` included).
    """

    def __init__(self, url: str, *, retry_s: float = RIDE_OUT_S, **kwargs: Any) -> None:
        self.retry_s = retry_s  # before Optuna's __init__, which already queries
        self.shown = storage_name(url)
        super().__init__(url, **kwargs)


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        if getattr(_inside, "active", False):
            return method(self, *args, **kwargs)
        _inside.active = True
        try:
            return ride_out(
                lambda: method(self, *args, **kwargs), name=self.shown, budget_s=self.retry_s
            )
        finally:
            _inside.active = False

    return call


for _name in RETRIED:
    setattr(RetryingRDBStorage, _name, _retried(getattr(RDBStorage, _name)))
