"""The FastAPI application.

``create_app`` takes the settings and how to dispatch a started batch, so the same app
serves the Celery deployment (``create_service_app``) and the standalone mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from distributor.api.error_statuses import ERROR_STATUSES
from distributor.api.routes import (
    audit,
    batches,
    dashboard,
    health,
    metrics,
    reports,
    transfers,
    webhooks,
)
from distributor.broker import batch_dispatcher, make_celery
from distributor.config import Settings, get_settings

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room around the largest file in an upload's body: boundaries, part headers, form fields."""


def _error(status_code: int) -> Callable[[Request, Exception], JSONResponse]:
    def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_code)

    return handler


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, but an input JSON cannot carry (``1e400`` read as inf) goes back as text.

    FastAPI's own handler echoes it as is, and the JSON encoder fails on it: a 500.
    """
    assert isinstance(exc, RequestValidationError)
    errors = _json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def create_app(settings: Settings, *, dispatch: Callable[[int], None]) -> FastAPI:
    """The API for ``settings``; ``dispatch(batch_id)`` starts sending a batch's rows."""
    # A body larger than any upload is cut off as it arrives (413), before the form is
    # parsed and before the token is checked: else any caller could fill the disk.
    app = FastAPI(
        title="distributor",
        summary="Bulk giftcard distribution through Centrapay",
        max_body_size=settings.upload_max_bytes + MULTIPART_OVERHEAD_BYTES,
    )
    app.state.settings = settings
    app.state.dispatch = dispatch
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for error, status_code in ERROR_STATUSES.items():
        app.add_exception_handler(error, _error(status_code))
    app.include_router(health.router)
    app.include_router(batches.router)
    app.include_router(reports.router)
    app.include_router(dashboard.router)
    app.include_router(metrics.router)
    app.include_router(webhooks.router)
    app.include_router(transfers.router)
    app.include_router(audit.router)
    return app


def create_service_app() -> FastAPI:
    """The API of the Celery deployment (uvicorn --factory ...api.app:create_service_app)."""
    settings = get_settings()
    return create_app(settings, dispatch=batch_dispatcher(make_celery(settings)))
