"""Rows after ``sent``, stored straight or sent through a real sandbox, and ways to read them."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any, cast

import redis
from sqlalchemy import update

from distributor.centrapay.client import TransferOrder
from distributor.config import Settings
from distributor.constants import CONTROL_QUEUE, RowState
from distributor.db import session_scope
from distributor.models import Batch, Row
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.transfer_status import transfer_summary
from distributor.vault import vault_from_settings
from tests.factories import load_row, make_batch, make_row

NEVER_CLAIMS = "+64220009999"
"""The sandbox never claims a transfer to a phone ending in 9999: it expires, then returns."""


def stored_row(
    settings: Settings,
    *,
    card: str,
    transfer_id: str | None = None,
    status: str | None = None,
    state: str = RowState.SENT,
    sent_ago: timedelta | None = timedelta(minutes=10),
    checked_ago: timedelta | None = None,
    batch_id: int | None = None,
) -> int:
    """A row written as it stands after ``sent`` (or ``state``), without Centrapay."""
    now = utcnow()
    with session_scope(settings.database_url) as session:
        batch = make_batch(session) if batch_id is None else session.get_one(Batch, batch_id)
        row = make_row(
            session,
            batch=batch,
            vault=vault_from_settings(settings),
            card_number=card,
            state=state,
        )
        row.transfer_id = transfer_id if transfer_id or state != RowState.SENT else f"T-{card}"
        row.transfer_status = status
        row.sent_at = None if sent_ago is None else now - sent_ago
        row.transfer_checked_at = None if checked_ago is None else now - checked_ago
        return row.id


def send_card(ctx: PipelineContext, settings: Settings, *, card: str, recipient: str) -> int:
    """Load ``card`` into the sandbox and transfer it to ``recipient``; the sent row's id."""
    asset = ctx.client.load_giftcard(
        asset_type="epay.nzd.test",
        issuer="ezipay",
        card_number=card,
        pin="1234",
        description=None,
    ).asset
    order = TransferOrder(
        recipient_alias=recipient,
        message=None,
        sender_name=None,
        description=None,
        notify_url=None,
    )
    transfer = ctx.client.create_transfer(asset_id=asset.id, order=order)
    row_id = stored_row(settings, card=card, transfer_id=transfer.id, status=transfer.status)
    with session_scope(settings.database_url) as session:
        session.execute(update(Row).where(Row.id == row_id).values(asset_id=asset.id))
    return row_id


def read_row(settings: Settings, row_id: int) -> Row:
    """The row as stored now."""
    with session_scope(settings.database_url) as session:
        return load_row(session, row_id)


def set_status(settings: Settings, row_id: int, status: str | None) -> None:
    """Overwrite the row's recorded transfer status."""
    with session_scope(settings.database_url) as session:
        session.execute(update(Row).where(Row.id == row_id).values(transfer_status=status))


def summary(settings: Settings, batch_id: int) -> dict[str, int]:
    """The batch's sent rows by transfer status."""
    with session_scope(settings.database_url) as session:
        return transfer_summary(session, batch_id)


def checked_at(settings: Settings, row_id: int) -> datetime | None:
    """When the row's transfer was last looked at."""
    return read_row(settings, row_id).transfer_checked_at


def queued_tasks(redis_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(task name, kwargs) of every message waiting in the control queue, oldest first."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = cast(list[bytes], client.lrange(CONTROL_QUEUE, 0, -1))
    finally:
        client.close()
    tasks = []
    for message in reversed(raw):
        envelope = json.loads(message)
        _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        tasks.append((envelope["headers"]["task"], kwargs))
    return tasks
