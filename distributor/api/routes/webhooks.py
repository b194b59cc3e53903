"""Centrapay's webhook: a transfer changed status (``notifyUrl``, CENTRAPAY_NOTIFY_URL).

Centrapay cannot send our API token, so anyone can call this route, and the body is only a
hint: it names a transfer, and a worker then fetches that transfer from Centrapay with our
key and records what Centrapay says (``distributor.refresh_transfer``). The body's status is
never read. The look-up happens in a worker, not in the request: the API needs no
Centrapay key or rate-limit bucket, answers at once, and no caller can make it wait for a
token. Requests for one row are folded together: at most one look-up per row per
REFRESH_DEBOUNCE_SECONDS, taken at the end of that window so it sees every change the
hints in it announced. Every well-formed hint gets the same 202, so the answer does not
tell whether the transfer is ours.
"""

from __future__ import annotations

import threading

import redis
from celery import Celery
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from distributor.api.deps import SettingsDep
from distributor.broker import make_celery, request_refresh
from distributor.config import Settings
from distributor.constants import REFRESH_KEY_PREFIX
from distributor.db import session_scope
from distributor.pipeline.transfer_status import find_tracked_row

WEBHOOK_MAX_BYTES = 64 * 1024
"""A transfer's JSON is well under 2 KiB; anything much larger is not from Centrapay."""
REFRESH_DEBOUNCE_SECONDS = 1.0
ACCEPTED = {"status": "accepted"}

router = APIRouter(prefix="/webhooks/centrapay", tags=["webhooks"])


class TransferHint(BaseModel):
    """The part of Centrapay's webhook body we read: the transfer's id."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=64, strict=True)


class _Refresher:
    """Schedules ``distributor.refresh_transfer`` on the broker, once per row per window."""

    def __init__(self, settings: Settings) -> None:
        self._celery: Celery = make_celery(settings)
        self._redis = redis.Redis.from_url(settings.redis_url)

    def request(self, *, row_id: int, batch_id: int) -> None:
        """Look the row's transfer up at the end of the window, unless already scheduled."""
        window_ms = int(REFRESH_DEBOUNCE_SECONDS * 1000)
        if self._redis.set(f"{REFRESH_KEY_PREFIX}{row_id}", 1, nx=True, px=window_ms):
            request_refresh(
                self._celery, row_id=row_id, batch_id=batch_id, countdown=REFRESH_DEBOUNCE_SECONDS
            )


_lock = threading.Lock()
_refreshers: dict[str, _Refresher] = {}


def _refresher(settings: Settings) -> _Refresher:
    """The process's refresher for the broker of ``settings`` (built on first use)."""
    with _lock:
        found = _refreshers.get(settings.redis_url)
        if found is None:
            found = _refreshers[settings.redis_url] = _Refresher(settings)
        return found


async def _read_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > WEBHOOK_MAX_BYTES:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the body is too large")
    return bytes(body)


def _look_again(settings: Settings, transfer_id: str) -> None:
    with session_scope(settings.database_url) as session:
        found = find_tracked_row(session, transfer_id)
    if found is not None:
        row_id, batch_id = found
        _refresher(settings).request(row_id=row_id, batch_id=batch_id)


@router.post("/asset-transfers", status_code=status.HTTP_202_ACCEPTED)
async def asset_transfer_changed(request: Request, settings: SettingsDep) -> dict[str, str]:
    """A transfer may have changed: have a worker fetch it from Centrapay (body untrusted)."""
    try:
        hint = TransferHint.model_validate_json(await _read_body(request))
    except ValidationError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="expected a JSON object with the transfer's id"
        ) from None
    await run_in_threadpool(_look_again, settings, hint.id)
    return ACCEPTED
