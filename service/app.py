"""The FastAPI application: API routers, the dashboard mount, the request gate and error
mapping. ``/docs`` and ``/redoc`` load their scripts from this server (``fastapi-offline``
ships Swagger UI and ReDoc), so they work without internet access."""

from __future__ import annotations

import logging
import threading

import optuna_dashboard
import sqlalchemy
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from optuna.exceptions import StorageInternalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from autotransfer.errors import UserInputError
from autotransfer.storage import StorageUnavailable, artifact_store, error_line, is_transient
from service.dashboard import DashboardMount
from service.db import get_engine
from service.gate import RequestGate
from service.login import router as login_router
from service.redact import install as redact_access_log
from service.routes import catalog_router, health_router, recommendations_router, studies_router
from service.routes.catalog import warm_backbone_table
from service.settings import Settings, get_settings
from service.throttle import KeyThrottle
from service.validation import validation_error
from service.views import read_storage

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5  # a restarting PostgreSQL is back within seconds

DESCRIPTION = """Submit searches over how deep to fine-tune a pretrained backbone, watch them,
and review their decision. Send an API key as `Authorization: Bearer <key>`.
optuna-dashboard is served under `/dashboard` (log in at `/login`)."""


def _user_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that is away (restarting, refusing or dropping connections) is 503 with
    ``Retry-After``, logged in one line; the engines ping pooled connections, so the first
    request after it is back succeeds. Any other database error stays a 500."""
    if not is_transient(exc):
        raise exc
    log.warning(
        "%s %s: 503, the database is unavailable (%s)",
        request.method,
        request.url.path,
        error_line(exc),
    )
    return JSONResponse(
        {"detail": f"The database is unavailable for now; retry in {RETRY_AFTER_S} s."},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


# what FastAPI answers (400) for a body its JSON parser gave up on other than by a syntax
# error, such as 5,000 nested brackets (RecursionError)
_UNPARSED = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own answer, except that a body too deeply nested to parse is a 422 naming
    the body and the fix, like every other body FastAPI cannot read."""
    unparsed = isinstance(exc, StarletteHTTPException) and exc.detail == _UNPARSED
    if unparsed and exc.status_code == 400:  # type: ignore[attr-defined]
        message = (
            "the body could not be parsed as JSON (nested too deeply?); send a JSON "
            "object, a search space nested a handful of levels"
        )
        return JSONResponse(
            {"detail": [{"loc": ["body"], "msg": message, "type": "json_invalid"}]},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    return await http_exception_handler(request, exc)  # type: ignore[arg-type]


def create_app(settings: Settings | None = None) -> RequestGate:
    """The API (a FastAPI app), with the dashboard paths sent to optuna-dashboard, behind the
    gate that checks keys and body sizes before a body is read (``service.gate``)."""
    settings = settings or get_settings()
    redact_access_log()
    get_engine(settings.database_url)  # creates the job table before the first request
    if settings.warm_catalog:
        threading.Thread(target=warm_backbone_table, name="warm-backbones", daemon=True).start()
    api = FastAPIOffline(
        title="autotransfer", version="1", description=DESCRIPTION, static_url="/docs-assets"
    )
    api.state.settings = settings
    api.state.throttle = throttle = KeyThrottle(settings.auth_failures)
    api.add_exception_handler(UserInputError, _user_error)
    for away in (StorageUnavailable, StorageInternalError, sqlalchemy.exc.DBAPIError):
        api.add_exception_handler(away, _storage_error)
    api.add_exception_handler(RequestValidationError, validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    routers = [health_router, studies_router, catalog_router, recommendations_router, login_router]
    for router in routers:
        api.include_router(router)
    app: FastAPI | DashboardMount = api
    if settings.dashboard:
        # the kept models show on their trials in the dashboard
        store = artifact_store(settings.database_url, settings.artifacts_dir)
        wsgi_app = optuna_dashboard.wsgi(read_storage(settings.database_url), artifact_store=store)
        app = DashboardMount(api, wsgi_app, settings, throttle)
    return RequestGate(app, [r for router in routers for r in router.routes], settings, throttle)
