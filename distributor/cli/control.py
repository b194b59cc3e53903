"""Commands that steer a batch: start, pause, resume, cancel, retry, approve, reject.

Each acts as the CLI's user (``--as`` or DISTRIBUTOR_USER) through ``operator_actions``,
which checks the role and writes the audit entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Protocol, TypeVar

import typer
from sqlalchemy.orm import Session

from distributor import operator_actions
from distributor.access.actors import Actor
from distributor.cli.batches import acting_session, dispatch_batch
from distributor.cli.common import app, console, load_settings
from distributor.constants import BatchState
from distributor.pipeline import approval
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings

BatchId = Annotated[int, typer.Argument(help="The batch id, as printed by upload.")]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class BatchAction(Protocol[T_co]):
    """An operator action that needs nothing but the batch: start, resume, cancel."""

    def __call__(self, session: Session, actor: Actor, /, *, batch_id: int, now: datetime) -> T_co:
        """Take the action on the batch as ``actor``, in ``session``'s transaction."""


def _steer(batch: int, action: BatchAction[T], *, dispatch: bool = False) -> T:
    """What ``action`` returns, taken on the batch as the CLI's user in one transaction;
    with ``dispatch``, the batch's rows are then sent."""
    settings = load_settings()
    with acting_session(settings) as (session, actor):
        done = action(session, actor, batch_id=batch, now=utcnow())
    if dispatch:
        dispatch_batch(settings, batch)
    return done


@app.command()
def start(batch: BatchId) -> None:
    """Start sending a batch uploaded with --no-start, or a scheduled one before its time."""
    _steer(batch, operator_actions.start, dispatch=True)
    console.print(f"batch {batch} started")


@app.command()
def pause(batch: BatchId) -> None:
    """Stop taking new rows of a batch; rows in flight finish their step."""
    settings = load_settings()
    with acting_session(settings) as (session, actor):
        reason = f"paused by {actor.name}"
        operator_actions.pause(session, actor, batch_id=batch, reason=reason, now=utcnow())
    console.print(f"batch {batch} paused")


@app.command()
def resume(batch: BatchId) -> None:
    """Go on with a paused batch."""
    _steer(batch, operator_actions.resume, dispatch=True)
    console.print(f"batch {batch} resumed")


@app.command()
def cancel(batch: BatchId) -> None:
    """Stop a batch for good: rows not yet sent are cancelled."""
    cancelled = _steer(batch, operator_actions.cancel)
    console.print(f"batch {batch} cancelled ({cancelled} rows)")


@app.command()
def approve(batch: BatchId) -> None:
    """Approve a batch awaiting approval that someone else uploaded: it goes on as asked."""
    settings = load_settings()
    with acting_session(settings) as (session, actor):
        summary = approval.summary(session, batch)
        state = operator_actions.approve(session, actor, batch_id=batch, now=utcnow())
    counts = ", ".join(f"{name} {count}" for name, count in summary.counts.items() if count)
    console.print(
        f"batch {batch} (uploaded by {summary.uploaded_by}, sender {summary.sender_name or '-'}, "
        f"{summary.asset_type}; {counts}) approved: now {state}",
        highlight=False,
        markup=False,
    )
    if state == BatchState.RUNNING:
        dispatch_batch(settings, batch)


@app.command()
def reject(
    batch: BatchId,
    reason: Annotated[str, typer.Option("--reason", help="Why; shown on the batch.")],
) -> None:
    """Reject a batch awaiting approval: it is cancelled and nothing is sent."""
    settings = load_settings()
    with acting_session(settings) as (session, actor):
        cancelled = operator_actions.reject(
            session, actor, batch_id=batch, reason=reason, now=utcnow()
        )
    console.print(f"batch {batch} rejected ({cancelled} rows cancelled)")


@app.command()
def retry(
    batch: BatchId,
    error_code: Annotated[
        list[str] | None, typer.Option("--error-code", help="Only rows failed with this code.")
    ] = None,
    row: Annotated[list[int] | None, typer.Option("--row", help="Only this row id.")] = None,
) -> None:
    """Send failed rows again, from the step that failed."""
    settings = load_settings()
    with acting_session(settings) as (session, actor):
        result = operator_actions.retry(
            session,
            actor,
            batch_id=batch,
            vault=vault_from_settings(settings),
            error_codes=error_code or (),
            row_ids=row or (),
            now=utcnow(),
        )
    if result.retried:
        dispatch_batch(settings, batch)
    console.print(f"batch {batch}: {len(result.retried)} rows sent again")
    if result.refused:
        ids = ", ".join(str(row_id) for row_id in result.refused)
        console.print(f"[yellow]not retried, another live row holds their card:[/] rows {ids}")
    if result.unreadable:
        ids = ", ".join(str(row_id) for row_id in result.unreadable)
        console.print(
            f"[yellow]not retried, their card cannot be read under any configured secret "
            f"(see DISTRIBUTOR_PREVIOUS_SECRET_KEYS):[/] rows {ids}"
        )
