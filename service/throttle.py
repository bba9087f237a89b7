"""Back-off for clients that send wrong API keys, per client address (``limits``' moving
window, in memory: one API process holds the count)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

_NAMESPACE = "wrong-key"


def parse_rule(rule: str) -> list[RateLimitItem]:
    """``"10/minute;100/hour"`` as ``limits`` items; ValueError naming the setting otherwise."""
    try:
        items = parse_many(rule)
    except ValueError:
        items = []
    if not items:
        raise ValueError(
            f"AUTOTRANSFER_AUTH_FAILURES={rule!r} is not a rate: write it as "
            "'<count>/<second|minute|hour|day>', several separated by ';' "
            "(e.g. '10/minute;100/hour')."
        )
    return items


class KeyThrottle:
    """Counts wrong keys per client address; a client over any of the limits is refused
    (429) until its oldest counted failure leaves the window.

    Callers ask ``retry_after`` before they look at a key, and call ``failed`` after a key
    was presented and not accepted. A correct key is never counted, and one address's
    failures never delay another address.
    """

    def __init__(self, rule: str) -> None:
        self.items = parse_rule(rule)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may present a key again; None when it may now."""
        waits = [
            self.limiter.get_window_stats(item, _NAMESPACE, client).reset_time - time.time()
            for item in self.items
            if not self.limiter.test(item, _NAMESPACE, client)
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, client: str) -> None:
        for item in self.items:
            self.limiter.hit(item, _NAMESPACE, client)


def too_many_message(client: str, retry_after: int) -> str:
    return (
        f"too many wrong API keys from {client}: retry in {retry_after} s "
        "(the limit is AUTOTRANSFER_AUTH_FAILURES)."
    )
