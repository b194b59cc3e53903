"""Retry: failed rows go back to work at the step that failed, their cards looked up again.

A retry takes the batch's lock (``batch_control.locked_state``) until it commits, so a
finish of the batch meanwhile waits for it and then sees the rows back at work; a done
batch that gets rows back runs again (``batch_control.reopen``) until the worker closes
it once more. Each row moves by compare-and-set from ``failed``, so two retries at once
put it back once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.constants import LIVE_STATES, BatchState, RowState
from distributor.errors import Conflict, SecretUnreadable
from distributor.models import Row
from distributor.pipeline.batch_control import locked_state, reopen
from distributor.vault import Vault

RETRY_CHUNK_ROWS = 1_000


@dataclass(frozen=True, kw_only=True)
class RetryResult:
    """Rows put back to work; rows refused because another live row holds their card; rows
    whose card cannot be read under any configured secret."""

    retried: list[int]
    refused: list[int]
    unreadable: list[int]


def retry(
    session: Session,
    *,
    batch_id: int,
    vault: Vault,
    error_codes: Sequence[str] = (),
    row_ids: Sequence[int] = (),
    now: datetime,
) -> RetryResult:
    """Failed rows go back to the step that failed: a loaded card is never loaded again.

    The step gets a fresh automatic-retry budget (``MAX_AUTO_RETRIES``); a row whose last
    call was ambiguous keeps its flag, so its next attempt looks before it sends.

    A row's card may have gone live in another row since it failed, possibly keyed under
    another secret during a rotation: so each card is looked up under every configured
    secret, like an upload does, and a row put back to work is keyed under the current one.
    """
    # Locked until commit: a finish of the batch meanwhile waits, then sees these rows back
    # at work, instead of closing the batch over them.
    if locked_state(session, batch_id) == BatchState.CANCELLED:
        raise Conflict(f"batch {batch_id} is cancelled")
    chosen = [Row.batch_id == batch_id, Row.state == RowState.FAILED]
    if error_codes:
        chosen.append(Row.error_code.in_(error_codes))
    if row_ids:
        chosen.append(Row.id.in_(row_ids))
    failed = session.execute(
        select(Row.id, Row.card_number_enc, Row.issuer, Row.asset_type).where(*chosen)
    ).all()
    result = RetryResult(retried=[], refused=[], unreadable=[])
    for start in range(0, len(failed), RETRY_CHUNK_ROWS):
        _retry_chunk(session, failed[start : start + RETRY_CHUNK_ROWS], vault, now, result)
    if result.retried:
        reopen(session, batch_id=batch_id)
    return result


def _retry_chunk(
    session: Session,
    rows: Sequence[Any],
    vault: Vault,
    now: datetime,
    result: RetryResult,
) -> None:
    keys: dict[int, tuple[str, ...]] = {}
    for row_id, card_number_enc, issuer, asset_type in rows:
        try:
            card_number = vault.decrypt(card_number_enc)
        except SecretUnreadable:
            result.unreadable.append(row_id)
            continue
        keys[row_id] = vault.card_keys(
            issuer=issuer, asset_type=asset_type, card_number=card_number
        )
    every_key = [key for row_keys in keys.values() for key in row_keys]
    live = set(
        session.scalars(
            select(Row.card_key).where(Row.card_key.in_(every_key), Row.state.in_(LIVE_STATES))
        )
    )
    for row_id, row_keys in keys.items():
        if live.intersection(row_keys):
            result.refused.append(row_id)
            continue
        back_to = update(Row).where(Row.id == row_id, Row.state == RowState.FAILED)
        try:
            # A savepoint per row: an upload that takes the card meanwhile trips the
            # live-card index, and only this row is refused.
            with session.begin_nested():
                moved = session.execute(
                    back_to.values(
                        state=case(
                            (Row.asset_id.is_(None), RowState.PENDING), else_=RowState.LOADED
                        ),
                        card_key=row_keys[0],
                        # A fresh automatic-retry budget for the step it goes back to.
                        load_attempts=case((Row.asset_id.is_(None), 0), else_=Row.load_attempts),
                        transfer_attempts=case(
                            (Row.asset_id.is_(None), Row.transfer_attempts), else_=0
                        ),
                        not_before=None,
                        retryable=False,
                        error_code=None,
                        error_detail=None,
                        enqueued_at=None,
                        updated_at=now,
                    ).execution_options(synchronize_session=False)
                )
        except IntegrityError:
            result.refused.append(row_id)
            continue
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            result.retried.append(row_id)
            live.update(row_keys)
