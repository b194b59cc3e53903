"""Reclaim: cancel transfers nobody has claimed, so their cards come back for a resend.

A row is eligible while it is sent, its transfer id is known and Centrapay last showed the
transfer ``created`` or ``sent`` (not claimed yet), sent before a cut-off. Each is cancelled
with ``POST /api/asset-transfers/{id}/cancel`` through the shared token bucket, then
recorded ``cancelled`` by the same forward-only compare-and-set the transfer poll uses, so
a poll or webhook landing meanwhile cannot move it back. The row then shows ``reclaimed``
(``delivery``) and a resend may follow.

It runs synchronously in the command or API call that asks for it, not as a control task:
it is an operator's explicit act on one batch, its duration is bounded by the rate limit
(rows / rate seconds), and its answer (which rows were reclaimed, which refused because
the recipient claimed first) is what the operator acts on next; a task would need a place
to keep that answer and a way to wait for it.

Warning: through the API, a reclaim of many rows holds the request open for as long as
the bucket takes to grant their tokens; name rows (``rowIds``) or use the CLI for a large
batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from sqlalchemy import select

from distributor.answer_log import AnswerLog, on_behalf_of
from distributor.centrapay.client import CentrapayClient
from distributor.config import Settings
from distributor.constants import RowState, TransferStatus
from distributor.db import session_scope
from distributor.errors import (
    CentrapayRateLimited,
    CentrapayRejected,
    CentrapayTransient,
    NotFound,
    TokenWaitTooLong,
)
from distributor.models import Batch, Row
from distributor.pipeline.clock import utcnow
from distributor.pipeline.transfer_status import record_transfer_status
from distributor.ratelimit import bucket_name_for
from distributor.ratelimit.redis import RedisTokenBucket

logger = logging.getLogger(__name__)

CANCELLABLE = (TransferStatus.CREATED, TransferStatus.SENT)
INVALID_STATUS = "INVALID_ASSET_TRANSFER_STATUS"
"""Centrapay's 403 to a cancel of a transfer past cancelling (claimed, returned...)."""
CALL_ATTEMPTS_MAX = 3
"""Cancel calls per row that may time out or meet a 5xx before the row is left as is."""


@dataclass(kw_only=True)
class ReclaimResult:
    """Row ids by what happened: reclaimed; refused by Centrapay (claimed first), with the
    code; left as is after repeated transient faults (run reclaim again)."""

    reclaimed: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    unsettled: list[int] = field(default_factory=list)


def reclaim_client(settings: Settings) -> CentrapayClient:
    """A Centrapay client on the workers' shared Redis bucket for this credential, counting
    its answers in the batches' answer log (written when the client is closed, at the latest)."""
    settings.require("centrapay_base_url", "centrapay_api_key", "centrapay_account_id")
    assert settings.centrapay_base_url and settings.centrapay_api_key
    assert settings.centrapay_account_id
    api_key = settings.centrapay_api_key.get_secret_value()
    bucket = RedisTokenBucket(
        redis.Redis.from_url(settings.redis_url),
        name=bucket_name_for(api_key),
        rate_per_second=settings.centrapay_rate_per_second,
        burst=settings.centrapay_burst,
    )
    return CentrapayClient(
        base_url=settings.centrapay_base_url,
        api_key=api_key,
        account_id=settings.centrapay_account_id,
        bucket=bucket,
        timeout_seconds=settings.centrapay_timeout_seconds,
        token_wait_max_seconds=settings.token_wait_max_seconds,
        max_connections=1,
        answers=AnswerLog.to_redis(settings.redis_url),
    )


def eligible(
    database_url: str, *, batch_id: int, sent_before: datetime, row_ids: Sequence[int] = ()
) -> list[tuple[int, str]]:
    """(row id, transfer id) of the batch's rows whose transfer may still be cancelled."""
    with session_scope(database_url) as session:
        if session.get(Batch, batch_id) is None:
            raise NotFound(f"batch {batch_id} does not exist")
        query = select(Row.id, Row.transfer_id).where(
            Row.batch_id == batch_id,
            Row.state == RowState.SENT,
            Row.transfer_id.is_not(None),
            Row.transfer_status.in_(CANCELLABLE),
            Row.sent_at < sent_before,
        )
        if row_ids:
            query = query.where(Row.id.in_(row_ids))
        return [(row_id, transfer_id or "") for row_id, transfer_id in session.execute(query)]


def reclaim(
    *,
    database_url: str,
    client: CentrapayClient,
    batch_id: int,
    older_than: timedelta,
    row_ids: Sequence[int] = (),
    progress: Callable[[int, int], None] = lambda _done, _total: None,
    result: ReclaimResult | None = None,
) -> ReclaimResult:
    """Cancel the eligible transfers of the batch, one call each; ``progress(done, total)``.

    A 401 or a rate-limit store that is down stops the run (raised); rows done so far stay
    recorded (also in ``result``, when the caller passes one), and running it again picks
    up the rest.
    """
    rows = eligible(
        database_url, batch_id=batch_id, sent_before=utcnow() - older_than, row_ids=row_ids
    )
    result = ReclaimResult() if result is None else result
    with on_behalf_of(batch_id):
        for done, (row_id, transfer_id) in enumerate(rows, start=1):
            _reclaim_one(database_url, client, row_id, transfer_id, result)
            progress(done, len(rows))
    return result


def _reclaim_one(
    database_url: str, client: CentrapayClient, row_id: int, transfer_id: str, result: ReclaimResult
) -> None:
    faults = 0
    while True:
        try:
            client.cancel_transfer(transfer_id)
            break
        except TokenWaitTooLong as wait:
            time.sleep(wait.wait_seconds)
        except CentrapayRateLimited as limited:
            time.sleep(limited.retry_after)
        except CentrapayRejected as error:
            # After a fault, the refusal may be of our own cancel, applied unanswered.
            if faults and error.code == INVALID_STATUS and _was_cancelled(client, transfer_id):
                break
            logger.info("row %s: transfer %s not cancelled: %s", row_id, transfer_id, error.code)
            result.refused[row_id] = error.code
            return
        except CentrapayTransient as error:
            # Safe to send again: Centrapay refuses a second cancel (see above).
            faults += 1
            if faults >= CALL_ATTEMPTS_MAX:
                logger.warning("row %s: cancel left for a later reclaim: %s", row_id, error)
                result.unsettled.append(row_id)
                return
    with session_scope(database_url) as session:
        record_transfer_status(
            session,
            row_id=row_id,
            transfer_id=transfer_id,
            status=TransferStatus.CANCELLED,
            now=utcnow(),
        )
    result.reclaimed.append(row_id)


def _was_cancelled(client: CentrapayClient, transfer_id: str) -> bool:
    try:
        return client.get_transfer(transfer_id).status == TransferStatus.CANCELLED
    except CentrapayRejected:
        return False
