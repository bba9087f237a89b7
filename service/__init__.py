"""HTTP API and job worker for autotransfer searches (FastAPI; built on the library).

The library never imports this package: ``autotransfer serve`` and ``autotransfer worker``
arrive through the entry-point group ``autotransfer.commands`` (``service.cli:register``).
Importing ``service`` itself stays cheap; the app and the worker load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.app import create_app
    from service.settings import Settings, get_settings
    from service.worker import Worker

__all__ = ["Settings", "Worker", "create_app", "get_settings"]

_HOMES = {
    "create_app": "service.app",
    "Settings": "service.settings",
    "get_settings": "service.settings",
    "Worker": "service.worker",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'service' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
