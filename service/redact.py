"""Keep keys out of the access log: a key sent in a query string (``?api_key=…``, which the API
never reads: keys go in the ``Authorization`` header) is logged with its value replaced."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

# query parameters that hold a credential by their name
KEY_LIKE = re.compile(r"key|token|secret|password|passwd|auth|credential|session", re.I)
REDACTED = "REDACTED"


def redact_query(path: str) -> str:
    """``path`` with the values of key-like query parameters replaced.

    >>> redact_query("/v1/studies?api_key=s3cret&limit=5")
    '/v1/studies?api_key=REDACTED&limit=5'
    >>> redact_query("/v1/studies?limit=5")
    '/v1/studies?limit=5'
    """
    route, sep, query = path.partition("?")
    if not sep or not KEY_LIKE.search(query):
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [(name, REDACTED if KEY_LIKE.search(name) else value) for name, value in pairs]
    return f"{route}?{urlencode(shown, safe='/:,')}"


class RedactKeys(logging.Filter):
    """On uvicorn's access logger: its records' arguments are (client, method, path, HTTP
    version, status); the path is redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install() -> None:
    """Add the filter to uvicorn's access logger once."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactKeys) for f in access.filters):
        access.addFilter(RedactKeys())
