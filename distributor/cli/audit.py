"""``distributor audit``: the audit trail, newest first."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from distributor.access import audit as trail
from distributor.cli.batches import batch_session
from distributor.cli.common import acting_user, app, console, load_settings
from distributor.constants import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX


@app.command()
def audit(
    batch: Annotated[int | None, typer.Option("--batch", help="Only this batch.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's actions.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
) -> None:
    """Who did what and when: uploads, approvals, starts, retries, reports, user changes."""
    settings = load_settings()
    table = Table("when", "user", "role", "action", "batch", "subject", "details")
    with batch_session(settings) as session:
        acting_user(session, settings)
        for entry in trail.entries(session, batch_id=batch, actor=user, limit=limit):
            table.add_row(
                entry.at.isoformat(timespec="seconds"),
                entry.actor,
                entry.actor_role,
                entry.action,
                str(entry.batch_id or "-"),
                entry.subject or "-",
                json.dumps(entry.details, sort_keys=True),
            )
    console.print(table, markup=False, highlight=False)
