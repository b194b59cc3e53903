"""The batch report: a masked, spreadsheet-safe CSV, streamed."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from distributor import operator_actions, report
from distributor.access.actors import Actor
from distributor.api.deps import ActorDep, Authorized, BatchId, SessionDep, SettingsDep
from distributor.config import Settings
from distributor.db import session_scope
from distributor.pipeline.clock import utcnow

router = APIRouter(prefix="/batches", tags=["reports"], dependencies=[Authorized])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _pieces(database_url: str, batch_id: int) -> Iterator[str]:
    # The body is read after the request's session is gone: it streams from its own.
    with session_scope(database_url) as session:
        yield from report.report_pieces(session, batch_id=batch_id)


def report_response(
    session: Session, settings: Settings, actor: Actor, batch_id: int
) -> StreamingResponse:
    """The report of ``batch_id``, its download recorded in the audit trail first."""
    operator_actions.download_report(session, actor, batch_id=batch_id, now=utcnow())
    session.commit()
    return StreamingResponse(
        _pieces(settings.database_url, batch_id),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-report.csv"'},
    )


@router.get(
    "/{batch_id}/report.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {CSV_MEDIA_TYPE: {}}}},
)
def report_csv(
    session: SessionDep, settings: SettingsDep, actor: ActorDep, batch_id: BatchId
) -> StreamingResponse:
    """One CSV line per row, in file order: masked, formula cells neutralised."""
    return report_response(session, settings, actor, batch_id)
