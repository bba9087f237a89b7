"""Typed dependencies: settings, a job-store session, and API-key checks."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.db import get_sessionmaker
from service.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    with get_sessionmaker(settings.database_url)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]

_bearer = HTTPBearer(auto_error=False, description="an API key from AUTOTRANSFER_API_KEYS")


def key_is_valid(key: str, settings: Settings) -> bool:
    # compare against every key, in constant time, so timing reveals nothing
    hits = [hmac.compare_digest(key.encode(), k.encode()) for k in settings.api_keys]
    return any(hits)


MISSING_KEY = "missing API key: send the header 'Authorization: Bearer <key>'"
WRONG_KEY = "this API key is not accepted"


def needs_key(settings: Settings, *, write: bool) -> bool:
    """Whether a route asks for a key: writes always, reads unless made public; none in dev."""
    return not settings.dev and (write or not settings.public_reads)


def _check(credentials: HTTPAuthorizationCredentials | None, settings: Settings) -> None:
    # service.gate checks the same before the body is read; this keeps each route safe alone
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, MISSING_KEY, headers={"WWW-Authenticate": "Bearer"}
        )
    if not key_is_valid(credentials.credentials, settings):
        raise HTTPException(status.HTTP_403_FORBIDDEN, WRONG_KEY)


def require_write(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Mutating routes: a valid key, unless the server runs in development mode."""
    if needs_key(settings, write=True):
        _check(credentials, settings)


def require_read(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Reading routes: a valid key, unless in development mode or AUTOTRANSFER_PUBLIC_READS."""
    if needs_key(settings, write=False):
        _check(credentials, settings)


WriteKey = Depends(require_write)
ReadKey = Depends(require_read)
