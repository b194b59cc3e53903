"""The sandbox's FastAPI app: the API and control routes, Centrapay-shaped error answers,
and the lifecycle task and webhook client that live as long as the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from centrapay_sandbox import control, routes, scripted_faults
from centrapay_sandbox.problems import ApiProblem, problem_body
from centrapay_sandbox.runtime import Sandbox


def create_app(sandbox: Sandbox) -> FastAPI:
    """The FastAPI app serving ``sandbox`` (wrap it in the Gate to serve it)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await sandbox.webhooks.start()
        ticker = asyncio.create_task(sandbox.lifecycle.run())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await sandbox.webhooks.stop()

    app = FastAPI(
        title="Centrapay sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    app.include_router(routes.router)
    app.include_router(control.router)
    app.include_router(scripted_faults.router)
    app.add_exception_handler(ApiProblem, _problem)
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_exception_handler(HTTPException, _http_error)
    return app


async def _problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    return JSONResponse(exc.body, status_code=exc.status)


async def _malformed(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(problem_body(400, describe_errors(exc)), status_code=400)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        problem_body(exc.status_code, str(exc.detail)),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def describe_errors(exc: RequestValidationError) -> str:
    """``accountId: Field required; type: Input should be ...``: where and what, per error."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if part != "body") or "body"
        if error["type"] == "json_invalid":
            parts.append("body is not valid JSON")
        else:
            parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
