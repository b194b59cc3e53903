"""The batch report: a masked, spreadsheet-safe CSV, streamed."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from distributor import report
from distributor.api.deps import Authorized, BatchId, SessionDep, SettingsDep
from distributor.batches import get_batch
from distributor.db import session_scope

router = APIRouter(prefix="/batches", tags=["reports"], dependencies=[Authorized])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _pieces(database_url: str, batch_id: int) -> Iterator[str]:
    # The body is read after the request's session is gone: it streams from its own.
    with session_scope(database_url) as session:
        yield from report.report_pieces(session, batch_id=batch_id)


@router.get(
    "/{batch_id}/report.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {CSV_MEDIA_TYPE: {}}}},
)
def report_csv(session: SessionDep, settings: SettingsDep, batch_id: BatchId) -> StreamingResponse:
    """One CSV line per row, in file order: masked, formula cells neutralised."""
    get_batch(session, batch_id)
    return StreamingResponse(
        _pieces(settings.database_url, batch_id),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-report.csv"'},
    )
