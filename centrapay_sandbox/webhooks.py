"""Webhook delivery: a POST of the transfer's JSON to its ``notifyUrl`` on each status change.

Deliveries for one transfer go out in order; a receiver that fails, is slow or is gone only
costs a warning in the log, never an error in the sandbox.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5.0


class Webhooks:
    """Posts transfer updates from the sandbox's event loop, one ordered chain per transfer."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._tails: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Open the HTTP client (at server start)."""
        self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        """Drop pending deliveries and close the client (at server stop)."""
        self.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def cancel(self) -> None:
        """Drop every delivery not yet made."""
        for task in self._tails.values():
            task.cancel()
        self._tails.clear()

    def post(self, url: str, *, key: str, payload: dict[str, Any]) -> None:
        """Queue a POST of ``payload`` to ``url`` after the earlier ones for ``key``."""
        previous = self._tails.get(key)
        task = asyncio.get_running_loop().create_task(self._deliver(url, payload, previous))
        self._tails[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]

    async def _deliver(
        self, url: str, payload: dict[str, Any], previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        if self._client is None:
            return
        try:
            response = await self._client.post(url, json=payload)
        except httpx.HTTPError as exc:
            logger.warning("webhook to %s failed: %s", url, type(exc).__name__)
            return
        if response.is_error:
            logger.warning("webhook to %s answered %s", url, response.status_code)
