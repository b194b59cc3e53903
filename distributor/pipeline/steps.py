"""One row's way through Centrapay: one call when all goes well, recovery in O(1) calls.

``advance_row`` is what every row task runs. It takes the row by compare-and-set, so it is
safe to run twice for one row at once; it returns how long to wait before running it again
(a 429, a transient fault's backoff), or None when there is nothing more to do now.

**Sending.** Seed 004's single call loads the card and transfers it (``assetTransfer``):
the row goes pending -> loading -> sent with the asset and transfer ids of one answer.
Two calls (load, then ``POST /api/asset-transfers``) serve accounts without the single call
(``pipeline.single_call``) and rows whose card is already loaded (a retry after a failed
transfer).

**Recovery**, only after an ambiguous outcome (a timeout or a dropped connection after a
POST: at once, in the same attempt; a lease taken over from a worker that died mid-call,
or a lookup that failed too: ``Claim.ambiguous``, before anything is sent again; a 5xx:
by sending again, see ``_post``), in one call whatever the account's history. A row whose
delivery is still unknown when its budget is spent gets up to ``LOOK_ONLY_ATTEMPTS``
attempts more, which only look: it fails unsure only when every one of those lookups failed.

- load step: ``GET /api/accounts/{id}/assets?externalId=CARD``. Ours and active: loaded
  (go on with the transfer). Ours and not active: transferred (sent). None: send again.
- transfer step: ``GET /api/assets/{assetId}``. Ours and active: not transferred, send
  again. Otherwise it was transferred (sent).

A row found transferred this way is ``sent`` with its transfer id pending: the answer that
carried the id was lost, and the shared sync (``pipeline.transfer_ids``) fills it in.
``DUPLICATE_ASSET`` and "already transferred" answers go through the same lookups, so a
late-applied earlier attempt is never reported as a failure of a delivered card. A 429,
401, 400 or 403 is not ambiguous and triggers no lookup.

**Fencing.** Every call first checks that this worker still holds the row's lease
(``LeaseKeeper.still_held``); a worker that lost it makes no further call for the row.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import NoReturn, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from distributor import metrics
from distributor.centrapay.client import Asset, Loaded, Transfer, TransferOrder
from distributor.db import session_scope
from distributor.errors import (
    CentrapayBadRequest,
    CentrapayForbidden,
    CentrapayNotFound,
    CentrapayServerError,
    CentrapayTransient,
    DistributorError,
)
from distributor.pipeline import batch_control, transitions
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.outcomes import (
    ALREADY_TRANSFERRED_CODES,
    DUPLICATE_ASSET,
    LOAD_REFUSAL_CODES,
    Action,
    decide,
)
from distributor.pipeline.single_call import refuses_single_call
from distributor.pipeline.transitions import LOAD, TRANSFER, Claim, RowData

logger = logging.getLogger(__name__)

ACTIVE = "active"
NOT_VISIBLE_CODES = frozenset({"ASSET_NOT_FOUND"})
"""403 codes of ``GET /api/assets/{id}`` for an asset that is no longer ours."""
LEASE_EXPIRED = "LEASE_EXPIRED"
LOOK_ONLY_ATTEMPTS = 3
"""Attempts past the budget of a step whose delivery is unknown; each only looks.

A card is identifiable in our account only until its recipient claims it: after that, not
finding it there no longer says it was never loaded. So a lookup that fails transiently is
made again soon, after a backoff started again from its first wait (``_handle``), not left
to an operator's retry minutes later: that is what makes the row's final state true.
Bounded, so a row whose lookups keep failing still ends: failed, its delivery unknown.
"""
CHECK_AGAIN_SECONDS = 5.0
LEASE_MARGIN_SECONDS = 0.5
"""A row held by another attempt's lease comes back this long after the lease runs out."""
"""A cancelled row whose lookup failed is looked at again after this long (by the sweeper)."""

T = TypeVar("T")


class _Stop(Exception):
    """The run for this row ends here; ``delay`` says when to come back (None: not now)."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay


class _Ambiguous(DistributorError):
    """A call left the card's delivery unknown: a POST that failed in a way that may have
    applied it, or the lookup meant to tell what one did. The next attempt looks first."""

    def __init__(self, cause: CentrapayTransient) -> None:
        super().__init__(str(cause))
        self.cause = cause


def advance_row(ctx: PipelineContext, row_id: int, *, loading: Claim | None = None) -> float | None:
    """Take the row as far as it can go now; seconds until it should be run again, or None.

    ``loading``: the row's load step, taken already and held (``rows_taken``); it runs. A
    process that is stopping takes no new step: the row is handed back at once (0.0), so a
    clean stop leaves no lease behind for time to free.
    """
    try:
        taken = False
        for step, run in ((LOAD, _load), (TRANSFER, _transfer)):
            if step == LOAD and loading is not None:
                # Held since it was taken (rows_taken); were it not, no call may start.
                claim: Claim | None = loading
                claimed_at = -math.inf
            elif ctx.stopping.is_set():
                return 0.0
            else:
                claimed_at = time.monotonic()
                with session_scope(ctx.database_url) as session:
                    claim = transitions.claim(
                        session, row_id=row_id, step=step, now=utcnow(), lease=ctx.lease
                    )
            if claim is not None:
                taken = True
                with ctx.leases.hold(claim, claimed_at=claimed_at):
                    run(ctx, claim)
        if not taken:
            _check_cancelled(ctx, row_id)
            return _until_lease_runs_out(ctx, row_id)
    except _Stop as stop:
        return stop.delay
    return None


@contextmanager
def rows_taken(ctx: PipelineContext, row_ids: Sequence[int]) -> Iterator[dict[int, Claim]]:
    """The load step of each of ``row_ids`` waiting for it, taken in one transaction (one
    instead of one a row), by row id; their leases are held while the block runs.

    The caller pops each claim it runs (``advance_row(loading=...)``); those left when the
    block ends (the message ran out of time, a row met trouble, an error) are handed back
    at once, not counted as attempts. If that fails too, their leases run out and they are
    taken over, looked up first, like the rows of a worker that died.
    """
    claimed_at = time.monotonic()
    with session_scope(ctx.database_url) as session:
        claims = transitions.claim_many(
            session, row_ids=row_ids, step=LOAD, now=utcnow(), lease=ctx.lease
        )
    with ExitStack() as held:
        for claim in claims.values():
            held.enter_context(ctx.leases.hold(claim, claimed_at=claimed_at))
        try:
            yield claims
        finally:
            if claims:
                _hand_back_unstarted(ctx, list(claims.values()))


def _hand_back_unstarted(ctx: PipelineContext, claims: list[Claim]) -> None:
    try:
        with session_scope(ctx.database_url) as session:
            for claim in claims:
                transitions.release(
                    session, claim=claim, not_before=None, now=utcnow(), counted=False
                )
    except SQLAlchemyError as error:
        logger.warning(
            "%d rows taken but not started are left to their leases: %s",
            len(claims),
            type(error).__name__,
        )


def _until_lease_runs_out(ctx: PipelineContext, row_id: int) -> float | None:
    """Seconds until another attempt's lease on the row runs out; None if none holds it.

    A row task retried after a database outage cut its step short finds the row still held
    by the lease that step took. Dropped, the row would wait for the sweeper; instead the
    task comes back just after the lease runs out and takes the row over then (a takeover:
    it looks before it sends). While a live worker renews the lease, the row comes back once
    a lease, and finds it settled or still held.
    """
    now = utcnow()
    with session_scope(ctx.database_url) as session:
        until = transitions.lease_held_until(session, row_id=row_id, now=now)
    if until is None:
        return None
    return (until - now).total_seconds() + LEASE_MARGIN_SECONDS


def _check_cancelled(ctx: PipelineContext, row_id: int) -> None:
    """A row of a cancelled batch whose card may have gone: look before it is cancelled.

    The sweeper sends such rows (an ambiguous last call, or a worker that died mid-call).
    Nothing is sent: the lookup decides between sent (the card was transferred) and
    cancelled (it was not; a loaded card keeps its asset id). A lookup that fails leaves
    the row to the next sweep.
    """
    claimed_at = time.monotonic()
    with session_scope(ctx.database_url) as session:
        claim = transitions.claim_check(session, row_id=row_id, now=utcnow(), lease=ctx.lease)
    if claim is None:
        return
    with ctx.leases.hold(claim, claimed_at=claimed_at):
        row = claim.row
        try:
            if claim.step == TRANSFER:
                asset_id = row.asset_id or ""
                if not _still_ours(ctx, claim, asset_id):
                    _mark_sent(ctx, claim, asset_id=None, transfer=None)
                found: str | None = None
            else:
                card_number = ctx.vault.decrypt(row.card_number_enc or b"")
                asset = _look(ctx, claim, lambda: _find_card(ctx, row, card_number))
                if asset is not None and asset.status != ACTIVE:
                    _mark_sent(ctx, claim, asset_id=asset.id, transfer=None)
                found = None if asset is None else asset.id
        except DistributorError as error:
            logger.info(
                "row %s: check of a cancelled row left to the next sweep: %s", row_id, error
            )
            with session_scope(ctx.database_url) as session:
                transitions.release(
                    session,
                    claim=claim,
                    not_before=utcnow() + timedelta(seconds=CHECK_AGAIN_SECONDS),
                    now=utcnow(),
                    counted=False,
                )
            return
        with session_scope(ctx.database_url) as session:
            moved = transitions.mark_cancelled(session, claim=claim, asset_id=found, now=utcnow())
        _finish_step(claim, moved, "cancelled")


# --- the steps --------------------------------------------------------------------------


def _load(ctx: PipelineContext, claim: Claim) -> None:
    row = claim.row
    assert row.card_number_enc is not None and row.asset_type and row.issuer
    try:
        card_number = ctx.vault.decrypt(row.card_number_enc)
        if claim.ambiguous:
            found = _look_for_delivery(ctx, claim, lambda: _find_card(ctx, row, card_number))
            if found is not None:
                _settle_found(ctx, claim, found)
                return
        _give_up_if_spent(ctx, claim, row, "Centrapay shows the card was not loaded")
        loaded = _send_load(ctx, claim, row, card_number)
    except _Ambiguous as lost:
        found = _look_at_once(ctx, claim, lost, lambda: _find_card(ctx, row, card_number))
        if found is not None:
            _settle_found(ctx, claim, found)
            return
        _handle(ctx, claim, lost.cause)
    except DistributorError as error:
        _handle(ctx, claim, error)
    if loaded is None:
        return
    if loaded.transfer is not None:
        _mark_sent(ctx, claim, asset_id=loaded.asset.id, transfer=loaded.transfer)
    _mark_loaded(ctx, claim, loaded.asset.id)


def _send_load(ctx: PipelineContext, claim: Claim, row: RowData, card_number: str) -> Loaded | None:
    """Load the card, in one call with its transfer when the account allows it.

    None when the answer led to a lookup that settled the row already.
    """
    assert row.asset_type and row.issuer
    order = _order(ctx, row) if ctx.single_call.wanted() else None
    pin = ctx.vault.decrypt(row.pin_enc) if row.pin_enc else None
    try:
        return _post(
            ctx,
            claim,
            lambda: ctx.client.load_giftcard(
                asset_type=row.asset_type or "",
                issuer=row.issuer or "",
                card_number=card_number,
                pin=pin,
                description=row.description,
                transfer=order,
            ),
        )
    except CentrapayBadRequest as error:
        if order is None or not refuses_single_call(error):
            raise
        ctx.single_call.refused(now=utcnow())
        _hand_back(ctx, claim)
    except CentrapayForbidden as error:
        if error.code == DUPLICATE_ASSET:
            # The card is loaded somewhere, perhaps by an earlier attempt of ours: a lookup
            # that fails leaves its delivery unknown (ambiguous), not an ordinary fault
            # whose error code would hide the earlier 5xx.
            ours = _look_for_delivery(ctx, claim, lambda: _find_card(ctx, row, card_number))
            if ours is None:
                # Held by another account: after an earlier ambiguous outcome, perhaps ours,
                # applied and claimed since; the row cannot say the card was not delivered
                # (an ambiguous claim is recorded so by _handle; a 5xx, sent again unseen).
                _handle(ctx, claim, error, unsure=row.error_code == CentrapayServerError.code)
            _settle_found(ctx, claim, ours)
            return None
        if order is None or error.code in LOAD_REFUSAL_CODES:
            raise
        # The transfer half was refused: the card is loaded, and a retry resumes there.
        ours = _look(ctx, claim, lambda: _find_card(ctx, row, card_number))
        _handle(ctx, claim, error, asset_id=None if ours is None else ours.id)


def _transfer(ctx: PipelineContext, claim: Claim) -> None:
    row = claim.row
    asset_id = row.asset_id
    assert asset_id is not None and row.recipient is not None
    try:
        if claim.ambiguous and not _look_for_delivery(
            ctx, claim, lambda: _still_ours(ctx, claim, asset_id)
        ):
            _mark_sent(ctx, claim, asset_id=None, transfer=None)
        _give_up_if_spent(ctx, claim, row, "Centrapay shows the card was not transferred")
        order = _order(ctx, row)
        try:
            transfer = _post(
                ctx, claim, lambda: ctx.client.create_transfer(asset_id=asset_id, order=order)
            )
        except CentrapayForbidden as error:
            if error.code in ALREADY_TRANSFERRED_CODES and not _still_ours(ctx, claim, asset_id):
                _mark_sent(ctx, claim, asset_id=None, transfer=None)
            raise
        except _Ambiguous as lost:
            if not _look_at_once(ctx, claim, lost, lambda: _still_ours(ctx, claim, asset_id)):
                _mark_sent(ctx, claim, asset_id=None, transfer=None)
            _handle(ctx, claim, lost.cause)
    except DistributorError as error:
        _handle(ctx, claim, error)
    _mark_sent(ctx, claim, asset_id=None, transfer=transfer)


# --- lookups ----------------------------------------------------------------------------


def _find_card(ctx: PipelineContext, row: RowData, card_number: str) -> Asset | None:
    return ctx.client.find_asset(card_number=card_number, asset_type=row.asset_type or "")


def _still_ours(ctx: PipelineContext, claim: Claim, asset_id: str) -> bool:
    """GET /api/assets/{id}: True while the card is ours and active, i.e. not transferred.

    An asset we loaded that we may no longer see was claimed by its recipient: only a
    transfer of ours takes a card out of the account (this service never archives).
    """
    try:
        asset = _look(ctx, claim, lambda: ctx.client.get_asset(asset_id))
    except CentrapayNotFound:
        return False
    except CentrapayForbidden as error:
        if error.code in NOT_VISIBLE_CODES:
            return False
        raise
    return asset.status == ACTIVE and asset.account_id in ("", ctx.client.account_id)


def _settle_found(ctx: PipelineContext, claim: Claim, asset: Asset) -> None:
    """The card is in our account: loaded if active (the transfer step goes on), else held
    in a transfer of ours (sent; stops the run)."""
    if asset.status != ACTIVE:
        _mark_sent(ctx, claim, asset_id=asset.id, transfer=None)
    _mark_loaded(ctx, claim, asset.id)


def _look_at_once(ctx: PipelineContext, claim: Claim, lost: _Ambiguous, look: Callable[[], T]) -> T:
    """Right after a POST whose answer was lost, look at once, while the answer is fresh.

    A card transferred moments ago cannot have been claimed by its recipient yet, so the
    lookup tells for sure; left until the row's next attempt (a backoff, a queue away) it
    could find the card already gone to the recipient's account. If the lookup fails too,
    the row waits as ambiguous, and its next attempt looks first.
    """
    try:
        return _look(ctx, claim, look)
    except DistributorError:
        _handle(ctx, claim, lost)


def _look_for_delivery(ctx: PipelineContext, claim: Claim, look: Callable[[], T]) -> T:
    """A lookup that tells whether a card may have been delivered: an ambiguous claim's,
    made before anything is sent again, or the one after ``DUPLICATE_ASSET``.

    Failing transiently, it leaves the delivery unknown: the row waits as ambiguous and
    looks again after the backoff, past the budget too (``_handle``).
    """
    try:
        return _look(ctx, claim, look)
    except CentrapayTransient as error:
        _handle(ctx, claim, _Ambiguous(error))


def _give_up_if_spent(ctx: PipelineContext, claim: Claim, row: RowData, known: str) -> None:
    """Fail a row whose attempts are spent, once a lookup has shown nothing was applied.

    A step whose delivery is unknown when its budget is spent gets up to
    ``LOOK_ONLY_ATTEMPTS`` attempts more: they only look, so the row's final state says
    whether the card was delivered. Takeovers count too, so a row whose workers keep dying
    is not taken over forever.
    """
    if claim.step_attempts <= ctx.policy.max_retries + 1:
        return
    code = row.error_code or LEASE_EXPIRED
    with session_scope(ctx.database_url) as session:
        transitions.mark_failed(
            session,
            claim=claim,
            error_code=code,
            detail=f"gave up after {claim.step_attempts - 1} attempts; {known}",
            retryable=True,
            now=utcnow(),
        )
    metrics.ROW_OUTCOMES.labels(step=claim.step, outcome=code).inc()
    _finish_batch_if_settled(ctx, claim.batch_id)
    raise _Stop(None)


# --- calls ------------------------------------------------------------------------------


def _fence(ctx: PipelineContext, claim: Claim) -> None:
    if not ctx.leases.still_held(claim):
        logger.warning("row %s: lease lost during %s; no further call", claim.row_id, claim.step)
        raise _Stop(None)


def _look(ctx: PipelineContext, claim: Claim, call: Callable[[], T]) -> T:
    """A call that changes nothing at Centrapay, made only while the lease is ours."""
    _fence(ctx, claim)
    return call()


def _post(ctx: PipelineContext, claim: Claim, call: Callable[[], T]) -> T:
    """A call that changes something: failing transiently, it may still have been applied.

    A timeout or a dropped connection (the request went out; the sandbox applies it) is
    ambiguous: looked at at once. A 5xx is rarely applied, so it is simply sent again after
    the backoff: Centrapay refuses a second load of a card in a transfer (DUPLICATE_ASSET)
    and a second transfer of a transferred card, and those answers lead to the lookup. The
    last attempt the budget allows looks at once instead, so the row never fails unsure.
    """
    _fence(ctx, claim)
    try:
        return call()
    except CentrapayServerError as error:
        if claim.step_attempts <= ctx.policy.max_retries:
            raise
        raise _Ambiguous(error) from error
    except CentrapayTransient as error:
        raise _Ambiguous(error) from error


def _order(ctx: PipelineContext, row: RowData) -> TransferOrder:
    assert row.recipient is not None
    return TransferOrder(
        recipient_alias=row.recipient,
        message=row.message,
        sender_name=row.sender_name,
        description=row.description,
        notify_url=ctx.notify_url,
    )


# --- recording outcomes -----------------------------------------------------------------


def _mark_loaded(ctx: PipelineContext, claim: Claim, asset_id: str) -> None:
    with session_scope(ctx.database_url) as session:
        moved = transitions.mark_loaded(session, claim=claim, asset_id=asset_id, now=utcnow())
    _finish_step(claim, moved, "loaded")


def _mark_sent(
    ctx: PipelineContext, claim: Claim, *, asset_id: str | None, transfer: Transfer | None
) -> NoReturn:
    with session_scope(ctx.database_url) as session:
        marked = transitions.mark_sent(
            session,
            claim=claim,
            asset_id=asset_id,
            transfer_id=None if transfer is None else transfer.id,
            transfer_status=None if transfer is None else transfer.status,
            now=utcnow(),
        )
    outcome = "sent" if transfer is not None else "sent_transfer_id_pending"
    _finish_step(claim, marked.moved, outcome)
    if not marked.others_wait:
        _finish_batch_if_settled(ctx, claim.batch_id)
    raise _Stop(None)


def _hand_back(ctx: PipelineContext, claim: Claim) -> NoReturn:
    """Nothing was applied and the row can go again at once (not an attempt)."""
    with session_scope(ctx.database_url) as session:
        transitions.release(session, claim=claim, not_before=None, now=utcnow(), counted=False)
    raise _Stop(0.0)


def _finish_step(claim: Claim, moved: bool, outcome: str) -> None:
    if moved:
        metrics.ROW_OUTCOMES.labels(step=claim.step, outcome=outcome).inc()
        return
    logger.warning(
        "row %s: lease lost during %s; the row's new owner goes on", claim.row_id, claim.step
    )
    raise _Stop(None)


def _handle(
    ctx: PipelineContext,
    claim: Claim,
    error: DistributorError,
    *,
    asset_id: str | None = None,
    unsure: bool = False,
) -> NoReturn:
    """Record what ``error`` means for the row, then stop this run (raises _Stop).

    A call that left the delivery unknown (``_Ambiguous``) whose retries are spent is not
    failed yet: the row comes back after the backoff to look, up to ``LOOK_ONLY_ATTEMPTS``
    attempts past the budget (``_give_up_if_spent``), so its final state is known.
    """
    ambiguous = isinstance(error, _Ambiguous)
    cause = error.cause if isinstance(error, _Ambiguous) else error
    outcome = decide(cause, step_attempts=claim.step_attempts, policy=ctx.policy)
    action = outcome.action
    looks_left = claim.step_attempts <= ctx.policy.max_retries + LOOK_ONLY_ATTEMPTS
    if action is Action.FAIL and ambiguous and looks_left:
        action = Action.RETRY_LATER
    metrics.ROW_OUTCOMES.labels(step=claim.step, outcome=outcome.error_code).inc()
    logger.info("row %s %s: %s -> %s", claim.row_id, claim.step, outcome.error_code, action.value)
    now = utcnow()
    delay: float | None = None
    with session_scope(ctx.database_url) as session:
        if action is Action.FAIL:
            transitions.mark_failed(
                session,
                claim=claim,
                error_code=outcome.error_code,
                detail=str(cause),
                retryable=outcome.retryable,
                now=now,
                ambiguous=claim.ambiguous or unsure,
                asset_id=asset_id,
            )
        elif action is Action.PAUSE_BATCH:
            transitions.release(session, claim=claim, not_before=None, now=now, counted=False)
            batch_control.pause(
                session,
                batch_id=claim.batch_id,
                reason="Centrapay answered 401 Unauthorized: check CENTRAPAY_API_KEY, then resume",
            )
        else:
            counted = action is Action.RETRY_LATER
            delay = outcome.delay_seconds
            if action is not outcome.action:
                # Kept to look before failing: the backoff starts again from its first
                # wait, since a look made soon is one made before the recipient claims.
                delay = ctx.policy.delay(claim.step_attempts - ctx.policy.max_retries)
            transitions.release(
                session,
                claim=claim,
                not_before=now + timedelta(seconds=delay),
                now=now,
                counted=counted,
                ambiguous=ambiguous,
                error_code=outcome.error_code if counted else None,
                detail=str(cause) if counted else None,
            )
    if action is Action.FAIL:
        _finish_batch_if_settled(ctx, claim.batch_id)
    raise _Stop(delay)


def _finish_batch_if_settled(ctx: PipelineContext, batch_id: int) -> None:
    """Close the batch if this was its last row.

    In a transaction of its own, after the row's is committed: of two rows settling at
    once, the later check then sees both (inside each row's transaction, neither would).
    """
    with session_scope(ctx.database_url) as session:
        batch_control.finish_if_settled(session, batch_id=batch_id, now=utcnow())
