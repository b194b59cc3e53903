"""Commands for cards already sent: resend to a corrected recipient, reclaim unclaimed ones."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.progress import Progress

from distributor import operator_actions
from distributor.access.actors import Action, require
from distributor.cli.batches import batch_session, dispatch_batch
from distributor.cli.common import acting_user, app, console, fail, load_settings
from distributor.errors import DistributorError
from distributor.ingest.corrections import new_recipient, read_corrections
from distributor.pipeline import reclaim as reclaiming
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings

BatchId = Annotated[int, typer.Argument(help="The batch id, as printed by upload.")]
AGE = re.compile(r"(\d+)([smhd])")
AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DEFAULT_OLDER_THAN = "0s"
T = TypeVar("T")


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m`` or ``45s`` as a timedelta; BadParameter otherwise."""
    found = AGE.fullmatch(text.strip())
    if found is None:
        raise typer.BadParameter("a number and a unit: s, m, h or d (e.g. 7d)")
    return timedelta(**{AGE_UNITS[found[2]]: int(found[1])})


@app.command()
def resend(
    batch: BatchId,
    row: Annotated[int | None, typer.Option("--row", help="The row id to resend.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="The corrected recipient.")] = None,
    message: Annotated[
        str | None, typer.Option("--message", help="A new message (default: the row's).")
    ] = None,
    corrections: Annotated[
        Path | None,
        typer.Option(
            "--corrections", exists=True, dir_okay=False, help="CSV: line,recipientAlias[,message]"
        ),
    ] = None,
) -> None:
    """Send a loaded card again, to a corrected recipient: a new transfer, never a new load."""
    if (corrections is None) == (row is None or to is None):
        raise fail("give either --row ID --to NUMBER, or --corrections FILE.csv")
    settings = load_settings()
    vault = vault_from_settings(settings)
    if corrections is None:
        assert row is not None and to is not None
        with batch_session(settings) as session:
            actor = acting_user(session, settings)
            to_whom = _checked(lambda: new_recipient(to, message))
            operator_actions.resend(
                session, actor, batch_id=batch, row_id=row, to=to_whom, vault=vault, now=utcnow()
            )
        dispatch_batch(settings, batch)
        console.print(f"batch {batch}: row {row} resent")
        return
    with batch_session(settings) as session:
        actor = acting_user(session, settings)
    with corrections.open("rb") as stream:
        fixes = _checked(lambda: read_corrections(stream, max_rows=settings.upload_max_rows))
    done = _checked(
        lambda: operator_actions.resend_lines(
            settings.database_url,
            actor,
            batch_id=batch,
            lines=[(fix.line, fix.to) for fix in fixes],
            vault=vault,
        )
    )
    if done.resent:
        dispatch_batch(settings, batch)
    console.print(f"batch {batch}: {len(done.resent)} rows resent")
    for line, reason in done.refused.items():
        console.print(f"[yellow]line {line} not resent:[/] {escape(reason)}")
    if not done.resent:
        raise typer.Exit(1)


def _checked(call: Callable[[], T]) -> T:
    """The call's result, or the command ends with its error on one line."""
    try:
        return call()
    except DistributorError as exc:
        raise fail(escape(str(exc))) from None


@app.command()
def reclaim(
    batch: BatchId,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Only transfers sent longer ago (7d, 12h, 30m).")
    ] = DEFAULT_OLDER_THAN,
    row: Annotated[list[int] | None, typer.Option("--row", help="Only this row id.")] = None,
) -> None:
    """Cancel transfers not claimed yet, so their cards come back for a resend."""
    age = parse_age(older_than)
    settings = load_settings()
    with batch_session(settings) as session:
        actor = acting_user(session, settings)
        require(actor, Action.RECLAIM)  # before the settings the calls need are asked for
    try:
        client = reclaiming.reclaim_client(settings)
    except DistributorError as exc:
        raise fail(escape(str(exc)), code=2) from None
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("reclaiming", total=None)
            result = operator_actions.reclaim(
                settings.database_url,
                actor,
                client=client,
                batch_id=batch,
                older_than=age,
                row_ids=row or (),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except DistributorError as exc:
        raise fail(escape(str(exc))) from None
    finally:
        client.close()
    console.print(f"batch {batch}: {len(result.reclaimed)} transfers reclaimed")
    if result.refused:
        ids = ", ".join(f"{row_id} ({code})" for row_id, code in result.refused.items())
        console.print(f"[yellow]refused by Centrapay (claimed or past cancelling):[/] rows {ids}")
    if result.unsettled:
        ids = ", ".join(str(row_id) for row_id in result.unsettled)
        console.print(f"[yellow]Centrapay did not answer; run reclaim again:[/] rows {ids}")
