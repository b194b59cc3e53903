"""The operator dashboard: server-rendered pages over the batch queries and batch control.

A browser logs in with HTTP basic auth whose password is a user's token (or one of
DISTRIBUTOR_API_TOKENS; any user name); ``Authorization: Bearer`` works too. Each page shows
who is logged in and only the buttons their role may use; the actions check the role again.

Every form carries a token bound to the API token (``deps.checked_form`` says why). Pages
cannot be framed, so buttons cannot be clicked through a disguise, and they show masked
data only.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BeforeValidator, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor import batches, operator_actions
from distributor.access import audit
from distributor.access.actors import Action, Actor, allows
from distributor.api.dashboard_charts import (
    ANSWER_CLASSES,
    CHART_HEIGHT,
    CHART_WIDTH,
    batch_timeline,
)
from distributor.api.deps import (
    ID_MAX,
    BatchId,
    CheckedForm,
    DispatchDep,
    Login,
    LoginDep,
    RowId,
    SessionDep,
    SettingsDep,
    form_token,
)
from distributor.api.error_statuses import status_for
from distributor.api.routes import reports
from distributor.api.routes.batches import ErrorCodeFilter
from distributor.api.routes.transfers import (
    OLDER_THAN_MAX_SECONDS,
    RECIPIENT_MAX_CHARS,
    reclaim_transfers,
)
from distributor.config import Settings
from distributor.constants import MESSAGE_MAX_CHARS, BatchState, RowState
from distributor.delivery import delivery_of
from distributor.errors import (
    BucketUnavailable,
    CentrapayError,
    ConfigError,
    Conflict,
    DistributorError,
    UploadRejected,
)
from distributor.ingest.columns import OPTIONAL_COLUMNS, POSITIONAL_COLUMNS
from distributor.ingest.corrections import new_recipient
from distributor.models import Batch, Row, RowTransfer
from distributor.pipeline import approval
from distributor.pipeline.clock import utcnow
from distributor.pipeline.reclaim import CANCELLABLE
from distributor.pipeline.resend import RESENDABLE_TRANSFER_STATUSES, earlier_transfers
from distributor.pipeline.transfer_status import transfer_summary
from distributor.progress import Progress, batch_progress, batches_progress
from distributor.vault import vault_from_settings

REFRESH_SECONDS = 5
"""How often a page showing a running batch reloads itself."""
BATCHES_PER_PAGE = 50
FAILED_ROWS_SHOWN = 20
ROWS_PER_PAGE = 50
PROBLEM_ROWS_SHOWN = 100
"""Invalid and duplicate rows listed with their problems; the rows table pages through all."""
AUDIT_ENTRIES_SHOWN = 50
REJECT_REASON_MAX_CHARS = 500
OPERATOR_PAUSE_REASON = "paused from the dashboard"
RECLAIM_OLDER_THAN_MAX_DAYS = OLDER_THAN_MAX_SECONDS // 86_400
T = TypeVar("T")

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_templates = Environment(
    loader=PackageLoader("distributor.api", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters.update(duration=_duration, when=_when, thousands="{:,}".format)


def _page(template: str, *, status_code: int = status.HTTP_200_OK, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _templates.get_template(template).render(nonce=nonce, **context)
    headers = {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(html, status_code=status_code, headers=headers)


BUTTONS = {
    "start": Action.START,
    "pause": Action.PAUSE,
    "resume": Action.RESUME,
    "cancel": Action.CANCEL,
    "retry": Action.RETRY,
    "approve": Action.APPROVE,
    "reject": Action.REJECT,
    "resend": Action.RESEND,
    "reclaim": Action.RECLAIM,
}
"""Which action each button takes: a button the role may not use is not shown."""


def _actions(
    batch: Batch, progress: Progress, actor: Actor, uploader: str | None, *, unclaimed: int
) -> frozenset[str]:
    """The buttons that make sense for the batch as it stands and that ``actor`` may use;
    ``unclaimed``: the batch's sent rows whose transfer may still be reclaimed."""
    shown = set()
    if batch.state in (BatchState.QUEUED, BatchState.SCHEDULED):
        shown.add("start")
    if batch.state == BatchState.RUNNING:
        shown.add("pause")  # a queued batch sends nothing until started: nothing to pause
    if batch.state == BatchState.PAUSED:
        shown.add("resume")
    if batch.state == BatchState.AWAITING_APPROVAL and uploader != actor.name:
        shown.update(("approve", "reject"))
    if batch.state != BatchState.CANCELLED:
        if batch.state != BatchState.DONE or progress.failed:
            shown.add("cancel")
        if progress.failed:
            shown.add("retry")
    if unclaimed:
        shown.add("reclaim")
    return frozenset(name for name in shown if allows(actor, BUTTONS[name]))


def _row_buttons(row: Row, batch: Batch, actor: Actor) -> frozenset[str]:
    """The buttons of one line of the rows table that ``actor`` may use: Resend for a row
    whose loaded card did not reach its recipient and is ours again, Reclaim for a sent row
    whose transfer nobody has claimed yet. The same rules as ``pipeline.resend`` and
    ``pipeline.reclaim``, which check them again when the button is pressed."""
    shown = set()
    card_is_ours = row.state == RowState.FAILED or (
        row.state == RowState.SENT and row.transfer_status in RESENDABLE_TRANSFER_STATUSES
    )
    if (
        card_is_ours
        and row.asset_id is not None
        and not row.ambiguous
        and batch.state != BatchState.CANCELLED
    ):
        shown.add("resend")
    if (
        row.state == RowState.SENT
        and row.transfer_id is not None
        and row.transfer_status in CANCELLABLE
    ):
        shown.add("reclaim")
    return frozenset(name for name in shown if allows(actor, BUTTONS[name]))


@dataclass(frozen=True, kw_only=True)
class RowsFilter:
    """What the rows table shows: one state, one error code, the page holding one line."""

    state: str | None = None
    error_code: str | None = None
    line: int | None = None
    offset: int = 0

    def url(self, batch_id: int, *, anchor: str = "#rows", **changes: int | None) -> str:
        """The batch page with this filter, ``changes`` applied, at ``anchor``."""
        values = {
            "state": self.state,
            "error_code": self.error_code,
            "line": self.line,
            "offset": self.offset or None,
        }
        values.update(changes)
        query = urlencode({key: value for key, value in values.items() if value is not None})
        return f"/dashboard/batches/{batch_id}{'?' + query if query else ''}{anchor}"


@dataclass(frozen=True, kw_only=True)
class RowLine:
    """One row of the rows table: the row (masked columns only are shown), its delivery and
    the transfers it had before it was resent."""

    row: Row
    delivery: str
    earlier: list[RowTransfer]
    buttons: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class RowsTable:
    """One page of the rows table, with the links to the pages around it."""

    lines: list[RowLine]
    filter: RowsFilter
    offset: int
    newer_url: str | None
    older_url: str | None
    line_missing: bool
    """A line was asked for and no row the filter keeps has it."""

    @property
    def has_buttons(self) -> bool:
        """Whether a line has a button: the table then has a column for them."""
        return any(line.buttons for line in self.lines)


def _line_offset(session: Session, batch_id: int, chosen: RowsFilter, line: int) -> int:
    """The offset of the page of ``batches.list_rows`` (same filter, same order) holding
    ``line``: the rows before it, rounded down to a page."""
    before = select(func.count()).where(Row.batch_id == batch_id, Row.line_no < line)
    if chosen.state is not None:
        before = before.where(Row.state == chosen.state)
    if chosen.error_code is not None:
        before = before.where(Row.error_code == chosen.error_code)
    count = session.scalar(before) or 0
    return count - count % ROWS_PER_PAGE


def _rows_table(session: Session, batch: Batch, actor: Actor, chosen: RowsFilter) -> RowsTable:
    offset = chosen.offset
    if chosen.line is not None:
        offset = _line_offset(session, batch.id, chosen, chosen.line)
    found = batches.list_rows(
        session,
        batch_id=batch.id,
        state=chosen.state,
        error_code=chosen.error_code,
        limit=ROWS_PER_PAGE + 1,
        offset=offset,
    )
    shown = found[:ROWS_PER_PAGE]
    earlier = earlier_transfers(session, [row.id for row in shown])
    lines = [
        RowLine(
            row=row,
            delivery=delivery_of(row),
            earlier=earlier.get(row.id, []),
            buttons=_row_buttons(row, batch, actor),
        )
        for row in shown
    ]
    return RowsTable(
        lines=lines,
        filter=chosen,
        offset=offset,
        newer_url=(
            chosen.url(batch.id, line=None, offset=max(offset - ROWS_PER_PAGE, 0) or None)
            if offset
            else None
        ),
        older_url=(
            chosen.url(batch.id, line=None, offset=offset + ROWS_PER_PAGE)
            if len(found) > ROWS_PER_PAGE
            else None
        ),
        line_missing=chosen.line is not None and all(row.line_no != chosen.line for row in shown),
    )


_FIELD_PARTS = re.compile(
    "; (?=(?:{}): )".format("|".join(("row", *POSITIONAL_COLUMNS, *OPTIONAL_COLUMNS)))
)
"""Where ``rows.error_detail`` (``field: problem; field: problem``) starts its next problem;
a problem's own text may hold a semicolon, never one followed by a field name and a colon."""


@dataclass(frozen=True, kw_only=True)
class ProblemLine:
    """One problem of an invalid or duplicate row: its line, field, code and what is wrong."""

    line_no: int
    state: str
    field: str
    problem: str
    error_code: str | None


def _problem_lines(session: Session, batch_id: int) -> list[ProblemLine]:
    """The first invalid and duplicate rows in file order, one entry per problem found."""
    found = [
        row
        for state in (RowState.INVALID, RowState.DUPLICATE)
        for row in batches.list_rows(
            session, batch_id=batch_id, state=state, limit=PROBLEM_ROWS_SHOWN
        )
    ]
    found.sort(key=lambda row: (row.line_no, row.id))
    lines = []
    for row in found[:PROBLEM_ROWS_SHOWN]:
        for part in _FIELD_PARTS.split(row.error_detail or ""):
            field, colon, problem = part.partition(": ")
            lines.append(
                ProblemLine(
                    line_no=row.line_no,
                    state=row.state,
                    field=field if colon else "",
                    problem=problem if colon else part,
                    error_code=row.error_code,
                )
            )
    return lines


def _batch_page(
    session: Session,
    settings: Settings,
    login: Login,
    batch_id: int,
    *,
    rows_filter: RowsFilter | None = None,
    notice: dict[str, int] | None = None,
    problem: str | None = None,
    problem_status: int = status.HTTP_409_CONFLICT,
) -> HTMLResponse:
    batch = batches.get_batch(session, batch_id)
    now = utcnow()
    progress = batch_progress(session, batch, now=now)
    counts = batches.batch_counts(session, batch_id)
    summary = approval.summary(session, batch_id)
    transfers = transfer_summary(session, batch_id)
    unclaimed = sum(transfers[status] for status in CANCELLABLE)
    return _page(
        "batch.html",
        status_code=problem_status if problem else status.HTTP_200_OK,
        actor=login.actor,
        batch=batch,
        progress=progress,
        counts=counts,
        row_states=list(RowState),
        rows_table=_rows_table(session, batch, login.actor, rows_filter or RowsFilter()),
        problem_lines=_problem_lines(session, batch_id),
        problem_rows=counts[RowState.INVALID] + counts[RowState.DUPLICATE],
        problem_rows_shown=PROBLEM_ROWS_SHOWN,
        timeline=batch_timeline(session, batch, now=now, redis_url=settings.redis_url),
        answer_classes=ANSWER_CLASSES,
        chart_width=CHART_WIDTH,
        chart_height=CHART_HEIGHT,
        failed_rows=batches.list_rows(
            session, batch_id=batch_id, state=RowState.FAILED, limit=FAILED_ROWS_SHOWN
        ),
        actions=_actions(batch, progress, login.actor, summary.uploaded_by, unclaimed=unclaimed),
        unclaimed=unclaimed,
        older_than_max_days=RECLAIM_OLDER_THAN_MAX_DAYS,
        recipient_max_chars=RECIPIENT_MAX_CHARS,
        message_max_chars=MESSAGE_MAX_CHARS,
        approval=summary,
        audit_entries=audit.entries(session, batch_id=batch_id, limit=AUDIT_ENTRIES_SHOWN),
        reason_max_chars=REJECT_REASON_MAX_CHARS,
        csrf_token=form_token(settings, login.token, now=time.time()),
        refresh=batch.state == BatchState.RUNNING,
        refresh_seconds=REFRESH_SECONDS,
        notice=notice,
        problem=problem,
    )


def _refused(
    session: Session, settings: Settings, login: Login, batch_id: int, error: DistributorError
) -> HTMLResponse:
    """The batch page showing why the action was not done, with the API's status for it."""
    session.rollback()
    return _batch_page(
        session,
        settings,
        login,
        batch_id,
        problem=str(error),
        problem_status=status_for(error),
    )


def _back(batch_id: int, counts: Mapping[str, int]) -> RedirectResponse:
    query = urlencode(counts)
    return RedirectResponse(
        f"/dashboard/batches/{batch_id}{'?' + query if query else ''}",
        status_code=status.HTTP_303_SEE_OTHER,
    )


def _puts_rows_to_work(_result: object) -> bool:
    return True


def _no_counts(_result: object) -> Mapping[str, int]:
    return {}


def _act(
    session: Session,
    settings: Settings,
    login: Login,
    batch_id: int,
    action: Callable[[], T],
    *,
    dispatch: Callable[[int], None] | None = None,
    to_work: Callable[[T], bool] = _puts_rows_to_work,
    counts: Callable[[T], Mapping[str, int]] = _no_counts,
) -> Response:
    """What a form's POST answers: ``action`` done and committed, then back to the batch
    page (303) with ``counts(result)`` for its notice; or, when it is refused (the batch or
    row no longer allows it, a new recipient fails the upload rules, reclaim cannot reach
    Centrapay's settings, the rate-limit store or Centrapay itself), nothing done and the
    page with the problem, with the status the API answers for it (409, 422, 503, 502).

    ``dispatch`` is for an action that may put rows to work: it is called after the commit
    when ``to_work(result)`` says this one did.
    """
    try:
        result = action()
    except (Conflict, UploadRejected, ConfigError, BucketUnavailable, CentrapayError) as exc:
        return _refused(session, settings, login, batch_id, exc)
    session.commit()
    if dispatch is not None and to_work(result):
        dispatch(batch_id)
    return _back(batch_id, counts(result))


@router.get("")
def batch_list(
    session: SessionDep, login: LoginDep, offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0
) -> HTMLResponse:
    """Batches, newest first, each with its state, counts and a progress bar."""
    found = batches.list_batches(session, limit=BATCHES_PER_PAGE, offset=offset)
    return _page(
        "batches.html",
        actor=login.actor,
        batches=found,
        progress=batches_progress(session, found),
        offset=offset,
        per_page=BATCHES_PER_PAGE,
        refresh=any(batch.state == BatchState.RUNNING for batch in found),
        refresh_seconds=REFRESH_SECONDS,
    )


def _blank_is_none(value: object) -> object:
    """The rows filter form sends every field, an empty one as ``""``: that is no filter."""
    return None if value == "" else value


Line = Annotated[int, Field(ge=1, le=ID_MAX)]


@router.get("/batches/{batch_id}")
def batch_detail(
    session: SessionDep,
    settings: SettingsDep,
    login: LoginDep,
    batch_id: BatchId,
    retried: Annotated[int | None, Query(ge=0)] = None,
    resent: Annotated[int | None, Query(ge=0)] = None,
    reclaimed: Annotated[int | None, Query(ge=0)] = None,
    refused: Annotated[int, Query(ge=0)] = 0,
    unsettled: Annotated[int, Query(ge=0)] = 0,
    state: Annotated[RowState | None, BeforeValidator(_blank_is_none)] = None,
    error_code: ErrorCodeFilter = None,
    line: Annotated[Line | None, BeforeValidator(_blank_is_none)] = None,
    offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
) -> HTMLResponse:
    """One batch: progress, counts by state, rate and ETA, the run as a chart, the rows
    (filtered by state and error code, or at one line), invalid rows and why, controls,
    failures by code, audit; after an action, a notice of what it did (the counts of its
    redirect: ``retried``, ``resent`` or ``reclaimed``, with ``refused`` and ``unsettled``)."""
    done = {"retried": retried, "resent": resent, "reclaimed": reclaimed}
    notice = {action: count for action, count in done.items() if count is not None}
    if notice:
        notice |= {"refused": refused, "unsettled": unsettled}
    rows_filter = RowsFilter(state=state, error_code=error_code or None, line=line, offset=offset)
    return _batch_page(
        session, settings, login, batch_id, rows_filter=rows_filter, notice=notice or None
    )


@router.get("/batches/{batch_id}/report.csv")
def report_csv(
    session: SessionDep, settings: SettingsDep, login: LoginDep, batch_id: BatchId
) -> StreamingResponse:
    """The batch report, for a browser logged in with basic auth."""
    return reports.report_response(session, settings, login.actor, batch_id)


@router.post("/batches/{batch_id}/approve", dependencies=[CheckedForm])
def approve(
    session: SessionDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    login: LoginDep,
    batch_id: BatchId,
) -> Response:
    """Approve a batch awaiting approval: it goes on as its uploader asked."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: operator_actions.approve(session, login.actor, batch_id=batch_id, now=utcnow()),
        dispatch=dispatch,
        to_work=lambda state: state == BatchState.RUNNING,
    )


@router.post("/batches/{batch_id}/reject", dependencies=[CheckedForm])
def reject(
    session: SessionDep,
    settings: SettingsDep,
    login: LoginDep,
    batch_id: BatchId,
    reason: Annotated[str, Form(min_length=1, max_length=REJECT_REASON_MAX_CHARS)],
) -> Response:
    """Reject a batch awaiting approval, with a reason: it is cancelled."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: operator_actions.reject(
            session, login.actor, batch_id=batch_id, reason=reason.strip(), now=utcnow()
        ),
    )


@router.post("/batches/{batch_id}/start", dependencies=[CheckedForm])
def start(
    session: SessionDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    login: LoginDep,
    batch_id: BatchId,
) -> Response:
    """Start sending a queued batch."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: operator_actions.start(session, login.actor, batch_id=batch_id, now=utcnow()),
        dispatch=dispatch,
    )


@router.post("/batches/{batch_id}/pause", dependencies=[CheckedForm])
def pause(
    session: SessionDep, settings: SettingsDep, login: LoginDep, batch_id: BatchId
) -> Response:
    """Stop taking new rows; rows in flight finish their step."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: operator_actions.pause(
            session, login.actor, batch_id=batch_id, reason=OPERATOR_PAUSE_REASON, now=utcnow()
        ),
    )


@router.post("/batches/{batch_id}/resume", dependencies=[CheckedForm])
def resume(
    session: SessionDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    login: LoginDep,
    batch_id: BatchId,
) -> Response:
    """Go on with a paused batch."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: operator_actions.resume(session, login.actor, batch_id=batch_id, now=utcnow()),
        dispatch=dispatch,
    )


@router.post("/batches/{batch_id}/cancel", dependencies=[CheckedForm])
def cancel(
    session: SessionDep, settings: SettingsDep, login: LoginDep, batch_id: BatchId
) -> Response:
    """Stop the batch for good; rows not yet sent are cancelled."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: operator_actions.cancel(session, login.actor, batch_id=batch_id, now=utcnow()),
    )


@router.post("/batches/{batch_id}/retry", dependencies=[CheckedForm])
def retry(
    session: SessionDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    login: LoginDep,
    batch_id: BatchId,
    error_code: Annotated[str, Form()],
) -> Response:
    """Put the batch's failed rows with ``error_code`` back to work."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: operator_actions.retry(
            session,
            login.actor,
            batch_id=batch_id,
            vault=vault_from_settings(settings),
            error_codes=[error_code],
            now=utcnow(),
        ),
        dispatch=dispatch,
        to_work=lambda result: bool(result.retried),
        counts=lambda result: {
            "retried": len(result.retried),
            "refused": len(result.refused) + len(result.unreadable),
        },
    )


@router.post("/batches/{batch_id}/rows/{row_id}/resend", dependencies=[CheckedForm])
def resend(
    session: SessionDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    login: LoginDep,
    batch_id: BatchId,
    row_id: RowId,
    recipient: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
) -> Response:
    """Send the row's loaded card again, to a corrected recipient, in a new transfer (never
    a new load); an empty message keeps the row's. The recipient and message are checked
    here, not by the form's schema, so a wrong one is shown on the page as the problem."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: operator_actions.resend(
            session,
            login.actor,
            batch_id=batch_id,
            row_id=row_id,
            to=new_recipient(recipient, message),
            vault=vault_from_settings(settings),
            now=utcnow(),
        ),
        dispatch=dispatch,
        counts=lambda _nothing: {"resent": 1},
    )


@router.post("/batches/{batch_id}/reclaim", dependencies=[CheckedForm])
def reclaim(
    session: SessionDep,
    settings: SettingsDep,
    login: LoginDep,
    batch_id: BatchId,
    older_than_days: Annotated[int, Form(ge=0, le=RECLAIM_OLDER_THAN_MAX_DAYS)] = 0,
    row_id: Annotated[int | None, Form(ge=1, le=ID_MAX)] = None,
) -> Response:
    """Cancel the batch's transfers nobody has claimed yet (sent more than
    ``older_than_days`` ago; or only the one of ``row_id``), so their cards come back for a
    resend. It answers once Centrapay has answered each cancel (see ``pipeline.reclaim``)."""
    return _act(
        session,
        settings,
        login,
        batch_id,
        lambda: reclaim_transfers(
            session,
            settings,
            login.actor,
            batch_id=batch_id,
            older_than=timedelta(days=older_than_days),
            row_ids=() if row_id is None else (row_id,),
        ),
        counts=lambda result: {
            "reclaimed": len(result.reclaimed),
            "refused": len(result.refused),
            "unsettled": len(result.unsettled),
        },
    )
