"""``/login`` and ``/logout``: the browser's way to the dashboard, a form that sets the
signed session cookie of ``service.dashboard``. Wrong keys count towards the back-off."""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from service.dashboard import COOKIE, SESSION_S, session_cookie, session_valid
from service.deps import key_is_valid
from service.gate import client_address
from service.settings import Settings
from service.throttle import KeyThrottle, too_many_message

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html><html><head><title>autotransfer: log in</title></head><body>
<h1>autotransfer dashboard</h1>{message}{session}
<form method="post" action="/login"><label>API key
<input id="key" name="key" type="password" autocomplete="current-password" autofocus></label>
<button id="login" type="submit">Log in</button></form></body></html>"""

_SESSION = """<p>You are logged in: <a href="/dashboard">open the dashboard</a>.</p>
<form method="post" action="/logout"><button id="logout" type="submit">Log out</button></form>
<p>Or log in with another key:</p>"""


def _page(
    request: Request,
    message: str = "",
    status_code: int = status.HTTP_200_OK,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    logged_in = session_valid(request.cookies.get(COOKIE, ""), settings)
    alert = f"<p role=alert>{html.escape(message)}</p>" if message else ""
    return HTMLResponse(
        _PAGE.format(message=alert, session=_SESSION if logged_in else ""),
        status_code=status_code,
        headers=headers,
    )


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    return _page(request)


@router.post("/login", response_model=None)
async def login(request: Request) -> HTMLResponse | RedirectResponse:
    settings: Settings = request.app.state.settings
    throttle: KeyThrottle = request.app.state.throttle
    client = client_address(request.scope)
    wait = throttle.retry_after(client)
    if wait is not None:
        return _page(
            request,
            too_many_message(client, wait),
            status.HTTP_429_TOO_MANY_REQUESTS,
            {"Retry-After": str(wait)},
        )
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0]
    if not key_is_valid(key, settings):
        throttle.failed(client)
        return _page(request, "That key is not accepted.", status.HTTP_403_FORBIDDEN)
    response = RedirectResponse("/dashboard", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE,
        session_cookie(key),
        max_age=SESSION_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE)
    return response
