"""The ASGI layer in front of the API: request log, latency, faults, API keys, rate limit.

It wraps the FastAPI app as the outermost ASGI callable, so it sees uvicorn's own ``send``:
that is how a ``drop`` fault reaches the connection to close it without an answer.
Only paths under ``/api/`` pass through the gate; the control routes go straight through.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from centrapay_sandbox import problems
from centrapay_sandbox.clock import iso
from centrapay_sandbox.faults import REFUSALS, Fault, server_error_status
from centrapay_sandbox.ledger import RequestRecord
from centrapay_sandbox.ratelimit import retry_after_header
from centrapay_sandbox.runtime import Sandbox

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/"
ACCOUNT_SCOPE_KEY = "sandbox.account_id"
API_KEY_HEADER = b"x-api-key"
INJECTED_RETRY_AFTER = "1"
GATEWAY_TIMEOUT_MESSAGE = "Endpoint request timed out"
DROP_SETTLE_SECONDS = 1.0  # how long to wait for the server to notice the closed connection


@dataclass
class _Outcome:
    status: int | None = None
    fault: str | None = None


class Gate:
    """Outermost ASGI app of the sandbox server: the real API's front door, with faults."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        at = iso(time.time())
        outcome = _Outcome()

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome.status = message["status"]
            await send(message)

        try:
            await self._pass(scope, receive, send, recording_send, outcome)
        finally:
            self.sandbox.ledger.record(
                RequestRecord(
                    method=scope["method"],
                    path=scope["path"],
                    status=outcome.status,
                    fault=outcome.fault,
                    at=at,
                    durationMs=round((time.monotonic() - started) * 1000, 3),
                )
            )

    async def _pass(
        self, scope: Scope, receive: Receive, raw_send: Send, send: Send, outcome: _Outcome
    ) -> None:
        sandbox = self.sandbox
        faults = sandbox.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        scripted = faults.take_scripted(scope["method"], scope["path"])
        if scripted is None:
            refusal, loss = faults.before(), faults.after()
        else:
            refusal, loss = (scripted, None) if scripted in REFUSALS else (None, scripted)
        if refusal is Fault.TOO_MANY:
            outcome.fault = refusal
            await answer(send, 429, problems.RATE_LIMIT_EXCEEDED, retry_after=INJECTED_RETRY_AFTER)
            return
        if refusal is Fault.SERVER_ERROR:
            outcome.fault = refusal
            status = server_error_status()
            await answer(send, status, HTTPStatus(status).phrase)
            return
        api_key = _header(scope, API_KEY_HEADER) or ""
        account_id = sandbox.keys.get(api_key)
        if account_id is None:
            await answer(send, 401, problems.MISSING_AUTHENTICATION)
            return
        wait = sandbox.limiter.acquire(api_key)
        if wait:
            await answer(
                send, 429, problems.RATE_LIMIT_EXCEEDED, retry_after=retry_after_header(wait)
            )
            return
        scope[ACCOUNT_SCOPE_KEY] = account_id
        if loss is None:
            await self.app(scope, receive, send)
            return
        outcome.fault = loss
        await self.app(scope, receive, _swallow)
        if loss is Fault.TIMEOUT:
            if not await _client_left(receive, within=faults.timeout_hold_seconds):
                await answer(send, 504, GATEWAY_TIMEOUT_MESSAGE)
            return
        _close_connection(raw_send)
        await _client_left(receive, within=DROP_SETTLE_SECONDS)


async def answer(send: Send, status: int, message: str, *, retry_after: str | None = None) -> None:
    """Send a Centrapay-shaped error answer."""
    body = json.dumps(problems.problem_body(status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _swallow(message: Message) -> None:
    """A ``send`` that loses the answer of an applied request."""


async def _client_left(receive: Receive, *, within: float) -> bool:
    """Wait up to ``within`` seconds for the client to disconnect; True if it did."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), within)
    except TimeoutError:
        return False
    return True


def _close_connection(send: Send) -> None:
    """Close the client's connection before any byte of an answer went out.

    Warning: relies on uvicorn, whose ``send`` is a method of its request cycle, which
    holds the asyncio transport.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("connection drops need uvicorn's transport; none found")
    transport.close()
