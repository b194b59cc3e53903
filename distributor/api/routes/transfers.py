"""After the send: a row's transfers, resend to a corrected recipient, reclaim unclaimed cards."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from distributor import batches, operator_actions
from distributor.access.actors import Action, Actor, require
from distributor.api.deps import (
    ID_MAX,
    ActorDep,
    BatchId,
    DispatchDep,
    RowId,
    SessionDep,
    SettingsDep,
)
from distributor.config import Settings
from distributor.constants import MESSAGE_MAX_CHARS, PAGE_SIZE_MAX
from distributor.errors import NotFound
from distributor.ingest.corrections import new_recipient, read_corrections
from distributor.models import Row
from distributor.pipeline import reclaim as reclaiming
from distributor.pipeline import resend as resending
from distributor.pipeline.clock import utcnow
from distributor.pipeline.reclaim import ReclaimResult
from distributor.vault import vault_from_settings

router = APIRouter(prefix="/batches", tags=["transfers"])

RECIPIENT_MAX_CHARS = 320  # the width of rows.recipient
OLDER_THAN_MAX_SECONDS = 10 * 365 * 86_400


class ResendRequest(BaseModel):
    """The corrected recipient (checked like an upload's) and, optionally, a new message."""

    model_config = ConfigDict(populate_by_name=True)

    recipient_alias: str = Field(alias="recipientAlias", max_length=RECIPIENT_MAX_CHARS)
    message: str | None = Field(default=None, max_length=MESSAGE_MAX_CHARS)


class ReclaimRequest(BaseModel):
    """Which transfers to cancel: all still unclaimed, sent before ``olderThanSeconds`` ago."""

    model_config = ConfigDict(populate_by_name=True)

    older_than_seconds: int = Field(
        default=0, alias="olderThanSeconds", ge=0, le=OLDER_THAN_MAX_SECONDS
    )
    row_ids: list[Annotated[int, Field(ge=1, le=ID_MAX)]] = Field(
        default_factory=list, alias="rowIds", max_length=PAGE_SIZE_MAX
    )


def _row(session: SessionDep, batch_id: int, row_id: int) -> Row:
    row = session.get(Row, row_id, populate_existing=True)
    if row is None or row.batch_id != batch_id:
        raise NotFound(f"row {row_id} is not in batch {batch_id}")
    return row


@router.get("/{batch_id}/rows/{row_id}/transfers")
def row_transfers(
    session: SessionDep, actor: ActorDep, batch_id: BatchId, row_id: RowId
) -> dict[str, Any]:
    """The row, and every transfer it had before its current one (oldest first)."""
    require(actor, Action.READ)
    row = _row(session, batch_id, row_id)
    earlier = resending.earlier_transfers(session, [row_id]).get(row_id, [])
    return {
        "row": batches.row_view(row),
        "earlier_transfers": [resending.transfer_view(one) for one in earlier],
    }


@router.post("/{batch_id}/rows/{row_id}/resend")
def resend_row(
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    batch_id: BatchId,
    row_id: RowId,
    request: ResendRequest,
) -> dict[str, Any]:
    """A new transfer of the row's loaded card to a corrected recipient (422, 404, 409)."""
    operator_actions.resend(
        session,
        actor,
        batch_id=batch_id,
        row_id=row_id,
        to=new_recipient(request.recipient_alias, request.message),
        vault=vault_from_settings(settings),
        now=utcnow(),
    )
    session.commit()
    dispatch(batch_id)
    return {"row": batches.row_view(_row(session, batch_id, row_id))}


@router.post("/{batch_id}/resend")
def resend_corrections(
    actor: ActorDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    batch_id: BatchId,
    file: Annotated[UploadFile, File(description="CSV: line,recipientAlias[,message]")],
) -> dict[str, Any]:
    """Resend the rows a corrections file names; a file with any problem is refused (422)."""
    require(actor, Action.RESEND)
    fixes = read_corrections(file.file, max_rows=settings.upload_max_rows)
    done = operator_actions.resend_lines(
        settings.database_url,
        actor,
        batch_id=batch_id,
        lines=[(fix.line, fix.to) for fix in fixes],
        vault=vault_from_settings(settings),
    )
    if done.resent:
        dispatch(batch_id)
    return {
        "resent": done.resent,
        "refused": [{"line": line, "reason": reason} for line, reason in done.refused.items()],
    }


def reclaim_transfers(
    session: Session,
    settings: Settings,
    actor: Actor,
    *,
    batch_id: int,
    older_than: timedelta,
    row_ids: Sequence[int] = (),
) -> ReclaimResult:
    """Cancel the batch's unclaimed transfers within the request (see ``pipeline.reclaim``),
    on a Centrapay client of its own on the shared bucket, closed after; for the API and the
    dashboard. The role and the batch are checked before the client is made: a viewer gets
    403 and a missing batch 404, not a 503 for a setting the client needs."""
    require(actor, Action.RECLAIM)
    batches.get_batch(session, batch_id)
    client = reclaiming.reclaim_client(settings)
    try:
        return operator_actions.reclaim(
            settings.database_url,
            actor,
            client=client,
            batch_id=batch_id,
            older_than=older_than,
            row_ids=row_ids,
        )
    finally:
        client.close()


@router.post("/{batch_id}/reclaim")
def reclaim(
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    batch_id: BatchId,
    request: ReclaimRequest | None = None,
) -> dict[str, Any]:
    """Cancel the batch's unclaimed transfers (synchronously: see ``pipeline.reclaim``)."""
    chosen = request or ReclaimRequest()
    result = reclaim_transfers(
        session,
        settings,
        actor,
        batch_id=batch_id,
        older_than=timedelta(seconds=chosen.older_than_seconds),
        row_ids=chosen.row_ids,
    )
    return {
        "reclaimed": result.reclaimed,
        "refused": [{"row_id": row_id, "code": code} for row_id, code in result.refused.items()],
        "unsettled": result.unsettled,
    }
