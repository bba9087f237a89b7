"""The FastAPI application: API routers, the dashboard mount and error mapping."""

from __future__ import annotations

import threading

import optuna_dashboard
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from autotransfer.errors import UserInputError
from service.dashboard import DashboardMount, login_router
from service.db import get_engine
from service.routes import catalog_router, health_router, recommendations_router, studies_router
from service.routes.catalog import backbone_table
from service.settings import Settings, get_settings
from service.views import read_storage

DESCRIPTION = """Submit searches over how deep to fine-tune a pretrained backbone, watch them,
and review their decision. Send an API key as `Authorization: Bearer <key>`.
optuna-dashboard is served under `/dashboard` (log in at `/login`)."""


def _user_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def create_app(settings: Settings | None = None) -> FastAPI | DashboardMount:
    """The API (a FastAPI app) wrapped so that the dashboard paths reach optuna-dashboard."""
    settings = settings or get_settings()
    get_engine(settings.database_url)  # creates the job table before the first request
    if settings.warm_catalog:
        threading.Thread(target=backbone_table, name="warm-backbones", daemon=True).start()
    api = FastAPI(title="autotransfer", version="1", description=DESCRIPTION)
    api.state.settings = settings
    api.add_exception_handler(UserInputError, _user_error)
    api.include_router(health_router)
    api.include_router(studies_router)
    api.include_router(catalog_router)
    if _has_recommend():
        api.include_router(recommendations_router)
    api.include_router(login_router)
    if not settings.dashboard:
        return api
    wsgi_app = optuna_dashboard.wsgi(read_storage(settings.database_url))
    app = DashboardMount(api, wsgi_app, settings)
    app.state = api.state  # type: ignore[attr-defined]
    return app


def _has_recommend() -> bool:
    try:
        from autotransfer.recommend import recommend  # noqa: F401
    except ImportError:
        return False
    return True
