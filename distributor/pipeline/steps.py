"""One row's way through Centrapay: load the card, then transfer it; recover what was lost.

``advance_row`` is what every row task runs. It takes the row by compare-and-set, so it is
safe to run twice for one row at once; it returns how long to wait before running it again
(a 429, a transient fault's backoff), or None when there is nothing more to do now.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import NoReturn

from distributor import metrics
from distributor.centrapay.client import Asset, Transfer
from distributor.db import session_scope
from distributor.errors import CentrapayForbidden, DistributorError
from distributor.models import Row
from distributor.pipeline import batch_control, transitions
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.outcomes import Action, decide
from distributor.pipeline.transitions import LOAD, TRANSFER, Claim

logger = logging.getLogger(__name__)

DUPLICATE_ASSET = "DUPLICATE_ASSET"


class _Stop(Exception):
    """The step ended without success; ``delay`` says when to come back (None: not now)."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay


def advance_row(ctx: PipelineContext, row_id: int) -> float | None:
    """Take the row as far as it can go now; seconds until it should be run again, or None.

    A process that is stopping takes no new step: the row is handed back at once (0.0),
    so a clean stop leaves no lease behind for time to free.
    """
    try:
        for step, run in ((LOAD, _load), (TRANSFER, _transfer)):
            if ctx.stopping.is_set():
                return 0.0
            claim = _claim(ctx, row_id, step)
            if claim is not None:
                run(ctx, claim)
    except _Stop as stop:
        return stop.delay
    return None


def _claim(ctx: PipelineContext, row_id: int, step: str) -> Claim | None:
    with session_scope(ctx.database_url) as session:
        return transitions.claim(session, row_id=row_id, step=step, now=utcnow(), lease=ctx.lease)


def _load(ctx: PipelineContext, claim: Claim) -> None:
    with session_scope(ctx.database_url) as session:
        row = transitions.load_row(session, claim.row_id)
    assert row.card_number_enc is not None and row.asset_type and row.issuer and row.card_key
    try:
        card_number = ctx.vault.decrypt(row.card_number_enc)
        asset = None
        if claim.step_attempts > 1:
            asset = ctx.client.find_asset(card_number=card_number, asset_type=row.asset_type)
        if asset is None:
            asset = _load_or_find_ours(ctx, row, card_number)
    except DistributorError as error:
        _handle(ctx, claim, error)
    with session_scope(ctx.database_url) as session:
        moved = transitions.mark_loaded(session, claim=claim, asset_id=asset.id, now=utcnow())
    _finish_step(claim, moved, "loaded")


def _load_or_find_ours(ctx: PipelineContext, row: Row, card_number: str) -> Asset:
    """Load the card; on DUPLICATE_ASSET, a card our own account already holds is ours."""
    assert row.asset_type and row.issuer and row.card_key
    try:
        return ctx.client.load_giftcard(
            asset_type=row.asset_type,
            issuer=row.issuer,
            card_number=card_number,
            pin=ctx.vault.decrypt(row.pin_enc) if row.pin_enc else None,
            description=row.description,
            idempotency_key=f"{row.card_key[:40]}-load",
        )
    except CentrapayForbidden as error:
        if error.code != DUPLICATE_ASSET:
            raise
        ours = ctx.client.find_asset(card_number=card_number, asset_type=row.asset_type)
        if ours is None:
            raise
        return ours


def _transfer(ctx: PipelineContext, claim: Claim) -> None:
    with session_scope(ctx.database_url) as session:
        row = transitions.load_row(session, claim.row_id)
    assert row.asset_id is not None and row.recipient is not None and row.card_key
    try:
        transfer: Transfer | None = None
        if claim.step_attempts > 1:
            transfer = ctx.client.find_transfer(asset_id=row.asset_id)
        if transfer is None:
            transfer = ctx.client.create_transfer(
                asset_id=row.asset_id,
                recipient_alias=row.recipient,
                message=row.message,
                sender_name=row.sender_name,
                description=row.description,
                notify_url=ctx.notify_url,
                idempotency_key=f"{row.card_key[:40]}-transfer",
            )
    except DistributorError as error:
        _handle(ctx, claim, error)
    with session_scope(ctx.database_url) as session:
        moved = transitions.mark_sent(
            session,
            claim=claim,
            transfer_id=transfer.id,
            transfer_status=transfer.status,
            now=utcnow(),
        )
    _finish_step(claim, moved, "sent")
    _finish_batch_if_settled(ctx, claim.batch_id)


def _finish_step(claim: Claim, moved: bool, outcome: str) -> None:
    if moved:
        metrics.ROW_OUTCOMES.labels(step=claim.step, outcome=outcome).inc()
        return
    logger.warning(
        "row %s: lease lost during %s; the row's new owner goes on", claim.row_id, claim.step
    )
    raise _Stop(None)


def _handle(ctx: PipelineContext, claim: Claim, error: DistributorError) -> NoReturn:
    """Record what ``error`` means for the row, then stop this run (raises _Stop)."""
    outcome = decide(error, step_attempts=claim.step_attempts, policy=ctx.policy)
    metrics.ROW_OUTCOMES.labels(step=claim.step, outcome=outcome.error_code).inc()
    logger.info(
        "row %s %s: %s -> %s", claim.row_id, claim.step, outcome.error_code, outcome.action.value
    )
    now = utcnow()
    delay: float | None = None
    with session_scope(ctx.database_url) as session:
        if outcome.action is Action.FAIL:
            transitions.mark_failed(
                session,
                claim=claim,
                error_code=outcome.error_code,
                detail=str(error),
                retryable=outcome.retryable,
                now=now,
            )
        elif outcome.action is Action.PAUSE_BATCH:
            transitions.release(session, claim=claim, not_before=None, now=now, counted=False)
            batch_control.pause(
                session,
                batch_id=claim.batch_id,
                reason="Centrapay answered 401 Unauthorized: check CENTRAPAY_API_KEY, then resume",
            )
        else:
            delay = outcome.delay_seconds
            transitions.release(
                session,
                claim=claim,
                not_before=now + timedelta(seconds=delay),
                now=now,
                counted=outcome.action is Action.RETRY_LATER,
                error_code=outcome.error_code if outcome.action is Action.RETRY_LATER else None,
                detail=str(error) if outcome.action is Action.RETRY_LATER else None,
            )
    if outcome.action is Action.FAIL:
        _finish_batch_if_settled(ctx, claim.batch_id)
    raise _Stop(delay)


def _finish_batch_if_settled(ctx: PipelineContext, batch_id: int) -> None:
    """Close the batch if this was its last row.

    In a transaction of its own, after the row's is committed: of two rows settling at
    once, the later check then sees both (inside each row's transaction, neither would).
    """
    with session_scope(ctx.database_url) as session:
        batch_control.finish_if_settled(session, batch_id=batch_id, now=utcnow())
