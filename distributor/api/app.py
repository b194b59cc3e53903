"""The FastAPI application.

``create_app`` takes the settings and how to dispatch a started batch, so the same app
serves the Celery deployment (``create_service_app``) and the standalone mode.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from distributor.api.routes import batches, dashboard, health, metrics, reports, webhooks
from distributor.broker import batch_dispatcher, make_celery
from distributor.config import Settings, get_settings
from distributor.errors import Conflict, NotFound, UploadRejected


def _error(status_code: int) -> Callable[[Request, Exception], JSONResponse]:
    def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_code)

    return handler


def create_app(settings: Settings, *, dispatch: Callable[[int], None]) -> FastAPI:
    """The API for ``settings``; ``dispatch(batch_id)`` starts sending a batch's rows."""
    app = FastAPI(title="distributor", summary="Bulk giftcard distribution through Centrapay")
    app.state.settings = settings
    app.state.dispatch = dispatch
    app.add_exception_handler(UploadRejected, _error(status.HTTP_422_UNPROCESSABLE_CONTENT))
    app.add_exception_handler(NotFound, _error(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(Conflict, _error(status.HTTP_409_CONFLICT))
    app.include_router(health.router)
    app.include_router(batches.router)
    app.include_router(reports.router)
    app.include_router(dashboard.router)
    app.include_router(metrics.router)
    app.include_router(webhooks.router)
    return app


def create_service_app() -> FastAPI:
    """The API of the Celery deployment (uvicorn --factory ...api.app:create_service_app)."""
    settings = get_settings()
    return create_app(settings, dispatch=batch_dispatcher(make_celery(settings)))
