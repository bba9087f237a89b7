"""optuna-dashboard inside the API process, behind the API keys, with a browser login.

The dashboard's single-page app asks for absolute URLs (``/dashboard…`` for pages,
``/api/…`` for data, ``/static/…`` for its bundle) and has no URL-prefix option, so those
three prefixes are routed, unchanged, to its WSGI app; the API itself lives under ``/v1``.
A browser authenticates with HTTP Basic (any user name, an API key as password), or through
``/login`` (``service.login``), which sets a signed session cookie (an HMAC of its expiry
under the key, so removing a key from the settings ends its sessions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

from a2wsgi import WSGIMiddleware
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.deps import key_is_valid
from service.gate import client_address
from service.settings import Settings
from service.throttle import KeyThrottle, too_many_message

if TYPE_CHECKING:
    from a2wsgi.asgi_typing import HTTPScope

PREFIXES = ("/dashboard", "/api/", "/static/")
COOKIE = "autotransfer_session"
SESSION_S = 12 * 3600

ASGIApp = Callable[..., Any]


def _sign(key: str, expiry: int) -> str:
    return hmac.new(key.encode(), f"session:{expiry}".encode(), hashlib.sha256).hexdigest()


def session_cookie(key: str, now: float | None = None) -> str:
    expiry = int(now or time.time()) + SESSION_S
    return f"{expiry}.{_sign(key, expiry)}"


def session_valid(value: str, settings: Settings) -> bool:
    expiry, _, sig = value.partition(".")
    if not expiry.isdigit() or int(expiry) < time.time():
        return False
    hits = [hmac.compare_digest(sig, _sign(k, int(expiry))) for k in settings.api_keys]
    return any(hits)


Credentials = Literal["accepted", "absent", "refused"]


def check_credentials(
    headers: dict[str, str], cookies: dict[str, str], settings: Settings
) -> Credentials:
    """A key sent as Bearer or as the password of HTTP Basic is accepted or refused; without
    one, a valid session cookie is accepted and anything else counts as absent (an expired
    cookie is not a guess)."""
    if settings.dev:
        return "accepted"
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "basic"):
        key = value.strip()
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(key).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return "refused"
        return "accepted" if key_is_valid(key, settings) else "refused"
    return "accepted" if session_valid(cookies.get(COOKIE, ""), settings) else "absent"


def _cookies(raw: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in raw.split(";"))
    return {name: value for name, _, value in pairs if name}


_NEEDED = (
    "<p>The dashboard needs an API key: "
    '<a href="/login">log in</a>, or send it as the password of HTTP Basic.</p>'
)
_REFUSED = (
    "<p role=alert>That key is not accepted. "
    '<a href="/login">Log in</a> with a key from AUTOTRANSFER_API_KEYS.</p>'
)
_BASIC = {"WWW-Authenticate": 'Basic realm="autotransfer", charset="UTF-8"'}


def _page(title: str, body: str, status_code: int, headers: dict[str, str]) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>{html.escape(title)}</title>{body}",
        status_code=status_code,
        headers=headers,
    )


class DashboardMount:
    """ASGI: dashboard paths go to optuna-dashboard after the key check, the rest to ``app``.

    Wrong keys count towards the client's back-off (``throttle``), as on the API.
    """

    def __init__(
        self, app: ASGIApp, wsgi_app: Any, settings: Settings, throttle: KeyThrottle
    ) -> None:
        self.app = app
        self.dashboard = WSGIMiddleware(wsgi_app)
        self.settings = settings
        self.throttle = throttle

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/dashboard" or path.startswith(PREFIXES)):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        response = self.refusal(scope, headers)
        if response is not None:
            await response(scope, receive, send)
            return
        if "accept-encoding" not in headers:
            # optuna-dashboard's static route reads this header unguarded (500 without it)
            scope = {**scope, "headers": [*scope["headers"], (b"accept-encoding", b"")]}
        await self.dashboard(cast("HTTPScope", scope), receive, send)

    def refusal(self, scope: dict[str, Any], headers: dict[str, str]) -> Response | None:
        if self.settings.dev:
            return None
        client = client_address(scope)
        wait = self.throttle.retry_after(client)
        if wait is not None:
            message = f"<p role=alert>{html.escape(too_many_message(client, wait))}</p>"
            return _page("Too many wrong keys", message, 429, {"Retry-After": str(wait)})
        credentials = check_credentials(headers, _cookies(headers.get("cookie", "")), self.settings)
        if credentials == "accepted":
            return None
        if credentials == "refused":
            self.throttle.failed(client)
            return _page("Key not accepted", _REFUSED, 401, _BASIC)
        if "text/html" in headers.get("accept", "") and scope["path"].startswith("/dashboard"):
            # a browser opening the page: send it to the login form rather than a Basic prompt
            return RedirectResponse("/login", status_code=303)
        return _page("Log in", _NEEDED, 401, _BASIC)
