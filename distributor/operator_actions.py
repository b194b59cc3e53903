"""Every action a person takes on the service, one function each, for the API, the CLI and
the dashboard alike.

Each checks the actor's role (``Forbidden``), makes its effect with the pipeline's
functions, then writes its audit entry in the same transaction: if the effect fails, the
caller rolls back and no entry says it happened (``_audited`` does the three in turn).
Dispatching a started batch's rows is left to the caller, after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from sqlalchemy.orm import Session

from distributor.access import audit, users
from distributor.access.actors import Action, Actor, require
from distributor.batches import get_batch
from distributor.centrapay.client import CentrapayClient
from distributor.config import Settings
from distributor.constants import BatchState, Role, RowState
from distributor.db import session_scope
from distributor.errors import Conflict, DistributorError
from distributor.ingest import BatchOptions, IngestResult, ingest_csv
from distributor.pipeline import approval, batch_control, scheduling
from distributor.pipeline import reclaim as reclaiming
from distributor.pipeline import resend as resending
from distributor.pipeline import retry as retrying
from distributor.pipeline.clock import utcnow
from distributor.pipeline.reclaim import ReclaimResult
from distributor.pipeline.resend import LinesResent, NewRecipient
from distributor.pipeline.retry import RetryResult
from distributor.vault import Vault


@dataclass(frozen=True, kw_only=True)
class Uploaded:
    """A stored batch and the state it was left in; ``dispatch``: its rows are to be sent now."""

    result: IngestResult
    state: BatchState
    dispatch: bool


@contextmanager
def _audited(
    session: Session,
    actor: Actor,
    action: Action,
    *,
    now: datetime,
    batch_id: int | None = None,
    subject: str | None = None,
) -> Iterator[dict[str, object]]:
    """Check the actor's role, let the block make the effect, then write the audit entry.

    The block fills in the entry's details (the dict it is given). If the block raises,
    no entry is written, and the caller rolls the effect back.
    """
    require(actor, action)
    details: dict[str, object] = {}
    yield details
    audit.record(
        session,
        actor=actor,
        action=action,
        now=now,
        batch_id=batch_id,
        subject=subject,
        details=details,
    )


def upload(
    session: Session,
    actor: Actor,
    *,
    stream: BinaryIO,
    vault: Vault,
    options: BatchOptions,
    settings: Settings,
    start: bool,
    start_at: datetime | None,
    now: datetime,
) -> Uploaded:
    """Store a CSV as a batch, then start it, schedule it, or hold it for approval.

    The upload's limits and whether it needs approval come from ``settings``.
    """
    require(actor, Action.UPLOAD)
    result = ingest_csv(
        stream,
        session=session,
        vault=vault,
        options=options,
        max_rows=settings.upload_max_rows,
        pin_required=settings.pin_required,
    )
    batch_id = result.batch_id
    state = BatchState.QUEUED
    if start_at is not None:
        scheduling.schedule(session, batch_id=batch_id, start_at=start_at)
        state = BatchState.SCHEDULED
    pending = result.counts.get(RowState.PENDING, 0)
    if approval.needs_approval(settings.approval_required_above_rows, pending):
        approval.hold(
            session,
            batch_id=batch_id,
            uploaded_by=actor.name,
            start_when_approved=start or start_at is not None,
        )
        state = BatchState.AWAITING_APPROVAL
    elif start and start_at is None:
        batch_control.start(session, batch_id=batch_id, now=now)
        state = BatchState.RUNNING
    audit.record(
        session,
        actor=actor,
        action=Action.UPLOAD,
        now=now,
        batch_id=batch_id,
        details={"file": options.name, "state": state, "counts": dict(result.counts)},
    )
    return Uploaded(result=result, state=state, dispatch=state == BatchState.RUNNING)


def approve(session: Session, actor: Actor, *, batch_id: int, now: datetime) -> BatchState:
    """Approve a batch awaiting approval (not one the actor uploaded); the state it moved to."""
    with _audited(session, actor, Action.APPROVE, now=now, batch_id=batch_id) as details:
        state = approval.approve(session, batch_id=batch_id, approver=actor.name, now=now)
        details["state"] = state
    return state


def reject(session: Session, actor: Actor, *, batch_id: int, reason: str, now: datetime) -> int:
    """Reject a batch awaiting approval, with a reason: it is cancelled. The rows cancelled."""
    with _audited(session, actor, Action.REJECT, now=now, batch_id=batch_id) as details:
        cancelled = approval.reject(
            session, batch_id=batch_id, approver=actor.name, reason=reason, now=now
        )
        details |= {"reason": reason, "cancelled": cancelled}
    return cancelled


def start(session: Session, actor: Actor, *, batch_id: int, now: datetime) -> None:
    """Start a queued batch, or a scheduled one before its time."""
    with _audited(session, actor, Action.START, now=now, batch_id=batch_id):
        batch_control.start(session, batch_id=batch_id, now=now)


def pause(session: Session, actor: Actor, *, batch_id: int, reason: str, now: datetime) -> None:
    """Pause a running or queued batch; Conflict (and no audit entry) if it is neither."""
    with _audited(session, actor, Action.PAUSE, now=now, batch_id=batch_id) as details:
        batch = get_batch(session, batch_id)
        if not batch_control.pause(session, batch_id=batch_id, reason=reason, now=now):
            raise Conflict(f"batch {batch_id} is {batch.state}, not running or queued")
        details["reason"] = reason


def resume(session: Session, actor: Actor, *, batch_id: int, now: datetime) -> None:
    """Go on with a paused batch."""
    with _audited(session, actor, Action.RESUME, now=now, batch_id=batch_id):
        batch_control.resume(session, batch_id=batch_id)


def cancel(session: Session, actor: Actor, *, batch_id: int, now: datetime) -> int:
    """Cancel a batch for good; the rows cancelled."""
    with _audited(session, actor, Action.CANCEL, now=now, batch_id=batch_id) as details:
        cancelled = batch_control.cancel(session, batch_id=batch_id, now=now)
        details["cancelled"] = cancelled
    return cancelled


def retry(
    session: Session,
    actor: Actor,
    *,
    batch_id: int,
    vault: Vault,
    error_codes: Sequence[str] = (),
    row_ids: Sequence[int] = (),
    now: datetime,
) -> RetryResult:
    """Send failed rows again (all, or those with these codes or ids)."""
    with _audited(session, actor, Action.RETRY, now=now, batch_id=batch_id) as details:
        result = retrying.retry(
            session,
            batch_id=batch_id,
            vault=vault,
            error_codes=error_codes,
            row_ids=row_ids,
            now=now,
        )
        details |= {
            "error_codes": list(error_codes),
            "row_ids": list(row_ids),
            "retried": len(result.retried),
            "refused": len(result.refused),
            "unreadable": len(result.unreadable),
        }
    return result


def resend(
    session: Session,
    actor: Actor,
    *,
    batch_id: int,
    row_id: int,
    to: NewRecipient,
    vault: Vault,
    now: datetime,
) -> None:
    """Send a row's loaded card again, to a corrected recipient (never a new load)."""
    with _audited(session, actor, Action.RESEND, now=now, batch_id=batch_id) as details:
        resending.resend(session, batch_id=batch_id, row_id=row_id, to=to, vault=vault, now=now)
        details |= {"row_id": row_id, "new_message": to.message is not None}


def resend_lines(
    database_url: str,
    actor: Actor,
    *,
    batch_id: int,
    lines: Sequence[tuple[int, NewRecipient]],
    vault: Vault,
) -> LinesResent:
    """Resend the rows a corrections file names, each in its own transaction and audited."""
    require(actor, Action.RESEND)

    def resend_row(session: Session, row_id: int, to: NewRecipient) -> None:
        resend(session, actor, batch_id=batch_id, row_id=row_id, to=to, vault=vault, now=utcnow())

    return resending.resend_lines(
        database_url, batch_id=batch_id, lines=lines, resend_row=resend_row
    )


def reclaim(
    database_url: str,
    actor: Actor,
    *,
    client: CentrapayClient,
    batch_id: int,
    older_than: timedelta,
    row_ids: Sequence[int] = (),
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> ReclaimResult:
    """Cancel the batch's unclaimed transfers, then record what came of it.

    Each cancel is recorded on its row as Centrapay answers (``pipeline.reclaim``), so the
    audit entry, with its counts, is written once the run is over, in a transaction of its
    own: a run stopped half way (a 401) is recorded with what it did and why it stopped; one
    that did nothing before its error (no such batch) is not recorded.
    """
    require(actor, Action.RECLAIM)
    result = ReclaimResult()
    stopped: str | None = None
    try:
        reclaiming.reclaim(
            database_url=database_url,
            client=client,
            batch_id=batch_id,
            older_than=older_than,
            row_ids=row_ids,
            progress=progress,
            result=result,
        )
    except DistributorError as error:
        stopped = str(error)
        raise
    finally:
        if stopped is None or result.reclaimed or result.refused or result.unsettled:
            with session_scope(database_url) as session:
                audit.record(
                    session,
                    actor=actor,
                    action=Action.RECLAIM,
                    now=utcnow(),
                    batch_id=batch_id,
                    details={
                        "older_than_seconds": int(older_than.total_seconds()),
                        "row_ids": list(row_ids),
                        "reclaimed": len(result.reclaimed),
                        "refused": len(result.refused),
                        "unsettled": len(result.unsettled),
                        "stopped": stopped,
                    },
                )
    return result


def download_report(session: Session, actor: Actor, *, batch_id: int, now: datetime) -> None:
    """Record that the actor takes the batch's report (the caller then writes it)."""
    with _audited(session, actor, Action.REPORT_DOWNLOAD, now=now, batch_id=batch_id):
        get_batch(session, batch_id)


def add_user(session: Session, actor: Actor, *, name: str, role: Role, now: datetime) -> str:
    """Create a user; their token, to show once."""
    with _audited(session, actor, Action.USER_ADD, now=now, subject=name) as details:
        token = users.add_user(session, name=name, role=role, now=now)
        details["role"] = role
    return token


def disable_user(session: Session, actor: Actor, *, name: str, now: datetime) -> None:
    """Refuse the user's token from now on."""
    with _audited(session, actor, Action.USER_DISABLE, now=now, subject=name):
        users.disable_user(session, name=name, now=now)


def rotate_token(session: Session, actor: Actor, *, name: str, now: datetime) -> str:
    """Give the user a new token; the new token, to show once."""
    with _audited(session, actor, Action.USER_ROTATE_TOKEN, now=now, subject=name):
        return users.rotate_token(session, name=name, now=now)
