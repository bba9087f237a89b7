"""optuna-dashboard inside the API process, behind the API keys, with a browser login.

The dashboard's single-page app asks for absolute URLs (``/dashboard…`` for pages,
``/api/…`` for data, ``/static/…`` for its bundle) and has no URL-prefix option, so those
three prefixes are routed, unchanged, to its WSGI app; the API itself lives under ``/v1``.
A browser authenticates with HTTP Basic (any user name, an API key as password), or through
``/login``, which sets a signed session cookie (an HMAC of its expiry under the key, so
removing a key from the settings ends its sessions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs

from a2wsgi import WSGIMiddleware
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from service.deps import key_is_valid
from service.settings import Settings

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


def _cookie_ok(value: str, settings: Settings) -> bool:
    expiry, _, sig = value.partition(".")
    if not expiry.isdigit() or int(expiry) < time.time():
        return False
    hits = [hmac.compare_digest(sig, _sign(k, int(expiry))) for k in settings.api_keys]
    return any(hits)


def authorized(headers: dict[str, str], cookies: dict[str, str], settings: Settings) -> bool:
    if settings.dev:
        return True
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return key_is_valid(value.strip(), settings)
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return key_is_valid(password, settings)
    return _cookie_ok(cookies.get(COOKIE, ""), settings)


def _cookies(raw: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in raw.split(";"))
    return {name: value for name, _, value in pairs if name}


class DashboardMount:
    """ASGI: dashboard paths go to optuna-dashboard after the key check, the rest to ``app``."""

    def __init__(self, app: ASGIApp, wsgi_app: Any, settings: Settings) -> None:
        self.app = app
        self.dashboard = WSGIMiddleware(wsgi_app)
        self.settings = settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/dashboard" or path.startswith(PREFIXES)):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if authorized(headers, _cookies(headers.get("cookie", "")), self.settings):
            if "accept-encoding" not in headers:
                # optuna-dashboard's static route reads this header unguarded (500 without it)
                scope = {**scope, "headers": [*scope["headers"], (b"accept-encoding", b"")]}
            await self.dashboard(cast("HTTPScope", scope), receive, send)
            return
        if "text/html" in headers.get("accept", "") and path.startswith("/dashboard"):
            # a browser opening the page: send it to the login form rather than a Basic prompt
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", b"/login"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        body = (
            b"<!doctype html><title>Log in</title><p>The dashboard needs an API key: "
            b'<a href="/login">log in</a>, or send it as the password of HTTP Basic.</p>'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", b'Basic realm="autotransfer", charset="UTF-8"'),
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


login_router = APIRouter(include_in_schema=False)

_FORM = """<!doctype html><html><head><title>autotransfer: log in</title></head><body>
<h1>autotransfer dashboard</h1>{message}
<form method="post" action="/login"><label>API key
<input id="key" name="key" type="password" autocomplete="current-password" autofocus></label>
<button id="login" type="submit">Log in</button></form></body></html>"""


@login_router.get("/login")
def login_form() -> HTMLResponse:
    return HTMLResponse(_FORM.format(message=""))


@login_router.post("/login", response_model=None)
async def login(request: Request) -> HTMLResponse | RedirectResponse:
    settings: Settings = request.app.state.settings
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0]
    if not key_is_valid(key, settings):
        message = f"<p role=alert>{html.escape('That key is not accepted.')}</p>"
        return HTMLResponse(_FORM.format(message=message), status_code=403)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        COOKIE,
        session_cookie(key),
        max_age=SESSION_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@login_router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
