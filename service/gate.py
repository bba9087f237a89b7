"""The outermost ASGI layer: refuse what the headers already refuse, then bound the body.

FastAPI reads and parses a body before it resolves a route's dependencies, so a key checked
by a dependency is checked only after the whole body arrived (a 10 MB body without a key
was parsed for seconds before its 401). Here, before anything is read:

1. a route that asks for a key (``require_write`` or ``require_read`` among its
   dependencies) gets one: 429 while the client is backed off for wrong keys, 401 without a
   key, 403 with a wrong one (counted towards the back-off);
2. a body larger than ``max_body_bytes`` is refused with 413, from its ``Content-Length``
   or, when it is streamed (chunked), as soon as it grows past the cap.

The body is then handed on from memory. The dashboard's paths match no API route and pass
through to ``service.dashboard``, which checks its own credentials (and the same back-off).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Literal

from fastapi import status
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match

from service.deps import (
    MISSING_KEY,
    WRONG_KEY,
    key_is_valid,
    needs_key,
    require_read,
    require_write,
)
from service.settings import Settings
from service.throttle import KeyThrottle, too_many_message

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]  # FastAPI, or service.dashboard's mount
KeyRule = Literal["write", "read"] | None


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of ``Bearer <token>`` (as ``HTTPBearer`` reads them), else None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _calls(dependant: Dependant) -> list[Any]:
    calls = []
    for dependency in dependant.dependencies:
        calls += [dependency.call, *_calls(dependency)]
    return calls


def _key_rule(route: BaseRoute) -> KeyRule:
    if not isinstance(route, APIRoute):
        return None
    calls = _calls(route.dependant)
    if require_write in calls:
        return "write"
    return "read" if require_read in calls else None


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or BodyTooLarge once more than ``limit`` bytes came; None if
    the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RequestGate:
    """ASGI middleware over the whole app (the API and the dashboard mount).

    ``routes`` are the API's routes, in the order the app tries them; the key each asks
    for is read once from its dependencies.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        settings: Settings,
        throttle: KeyThrottle,
    ) -> None:
        self.app = app
        self.routes = [(route, _key_rule(route)) for route in routes]
        self.settings = settings
        self.throttle = throttle

    def key_rule(self, scope: Scope) -> KeyRule:
        """What the route this request reaches asks of its key (None: no key, no route)."""
        for route, rule in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                return rule
        return None

    def refusal(self, scope: Scope) -> JSONResponse | None:
        rule = self.key_rule(scope)
        if rule is None or not needs_key(self.settings, write=rule == "write"):
            return None
        client = client_address(scope)
        wait = self.throttle.retry_after(client)
        if wait is not None:
            return JSONResponse(
                {"detail": too_many_message(client, wait)},
                status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(wait)},
            )
        token = bearer_token(header(scope, b"authorization"))
        if token is None:
            return JSONResponse(
                {"detail": MISSING_KEY},
                status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not key_is_valid(token, self.settings):
            self.throttle.failed(client)
            return JSONResponse({"detail": WRONG_KEY}, status.HTTP_403_FORBIDDEN)
        return None

    def too_large(self) -> JSONResponse:
        limit = self.settings.max_body_bytes
        return JSONResponse(
            {
                "detail": f"the request body is larger than {limit} bytes, the server's "
                "AUTOTRANSFER_MAX_BODY_BYTES: send a smaller body, or ask the operator to "
                "raise that setting."
            },
            status.HTTP_413_CONTENT_TOO_LARGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        length = header(scope, b"content-length") or ""
        if refused is None and length.isdigit() and int(length) > self.settings.max_body_bytes:
            refused = self.too_large()
        if refused is not None:
            await refused(scope, receive, send)
            return
        try:
            body = await read_body(receive, self.settings.max_body_bytes)
        except BodyTooLarge:
            await self.too_large()(scope, receive, send)
            return
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only http.disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
