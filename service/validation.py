"""422 for bodies that fail validation, with each error's echoed ``input`` made safe to send.

FastAPI's own handler echoes the input as sent: a ``NaN`` or ``Infinity`` (which Python's
``json`` parses) cannot be written back as JSON (a 500), and a large body came back whole.
Here non-finite floats become their JSON spelling as strings, and an ``input`` longer than
``MAX_INPUT_CHARS`` (as JSON) is cut to that many characters and sent as a string.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_INPUT_CHARS = 300
_SPELLING = {math.inf: "Infinity", -math.inf: "-Infinity"}


def finite(value: Any) -> Any:
    """``value`` with every NaN and ±Infinity replaced by "NaN", "Infinity", "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _SPELLING[value]
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def short_input(value: Any) -> Any:
    """``value`` itself when its JSON is short; else the first characters of its JSON."""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= MAX_INPUT_CHARS:
        return value
    return f"{text[:MAX_INPUT_CHARS]}… ({len(text)} characters, cut)"


def safe_errors(errors: Any) -> list[dict[str, Any]]:
    safe = []
    for error in finite(jsonable_encoder(errors)):
        if "input" in error:
            error["input"] = short_input(error["input"])
        safe.append(error)
    return safe


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for this type alone
        raise exc
    return JSONResponse(
        {"detail": safe_errors(exc.errors())},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )
