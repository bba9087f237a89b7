"""The API's routers, one per resource."""

from __future__ import annotations

from service.routes.catalog import router as catalog_router
from service.routes.health import router as health_router
from service.routes.recommendations import router as recommendations_router
from service.routes.studies import router as studies_router

__all__ = ["catalog_router", "health_router", "recommendations_router", "studies_router"]
