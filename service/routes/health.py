"""``/healthz`` (the process answers) and ``/readyz`` (its databases answer)."""

from __future__ import annotations

import optuna
import sqlalchemy as sa
from fastapi import APIRouter, Response, status

from service.db import get_engine
from service.deps import SettingsDep
from service.schemas import Health
from service.views import read_storage

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(settings: SettingsDep, response: Response) -> Health:
    """Ready when the job store and the Optuna storage both answer a query."""
    checks: dict[str, str] = {}
    try:
        with get_engine(settings.database_url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["job_store"] = "ok"
    except Exception as exc:
        checks["job_store"] = f"{type(exc).__name__}: {exc}"[:300]
    try:
        optuna.get_all_study_names(read_storage(settings.database_url))
        checks["optuna_storage"] = "ok"
    except Exception as exc:
        checks["optuna_storage"] = f"{type(exc).__name__}: {exc}"[:300]
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ok else "unavailable", checks=checks)
