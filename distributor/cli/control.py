"""Commands that steer a batch: start, pause, resume, cancel, retry."""

from __future__ import annotations

from typing import Annotated

import typer

from distributor.cli.batches import batch_session, dispatch_batch
from distributor.cli.common import app, console, load_settings
from distributor.errors import Conflict
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings

BatchId = Annotated[int, typer.Argument(help="The batch id, as printed by upload.")]


@app.command()
def start(batch: BatchId) -> None:
    """Start sending a batch uploaded with --no-start, or a scheduled one before its time."""
    settings = load_settings()
    with batch_session(settings) as session:
        batch_control.start(session, batch_id=batch, now=utcnow())
    dispatch_batch(settings, batch)
    console.print(f"batch {batch} started")


@app.command()
def pause(batch: BatchId) -> None:
    """Stop taking new rows of a batch; rows in flight finish their step."""
    settings = load_settings()
    with batch_session(settings) as session:
        if not batch_control.pause(session, batch_id=batch, reason="paused by an operator"):
            raise Conflict(f"batch {batch} is not running or queued")
    console.print(f"batch {batch} paused")


@app.command()
def resume(batch: BatchId) -> None:
    """Go on with a paused batch."""
    settings = load_settings()
    with batch_session(settings) as session:
        batch_control.resume(session, batch_id=batch)
    dispatch_batch(settings, batch)
    console.print(f"batch {batch} resumed")


@app.command()
def cancel(batch: BatchId) -> None:
    """Stop a batch for good: rows not yet sent are cancelled."""
    settings = load_settings()
    with batch_session(settings) as session:
        cancelled = batch_control.cancel(session, batch_id=batch, now=utcnow())
    console.print(f"batch {batch} cancelled ({cancelled} rows)")


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
    with batch_session(settings) as session:
        result = batch_control.retry(
            session,
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
