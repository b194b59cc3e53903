"""The ``report`` command: a batch's report CSV written to a file, for finance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

from distributor import operator_actions
from distributor.cli.common import acting_user, app, console, fail, load_settings
from distributor.db import session_scope
from distributor.errors import Forbidden, NotFound
from distributor.pipeline.clock import utcnow
from distributor.report import write_report


@app.command()
def report(
    batch: Annotated[int, typer.Argument(help="The batch id, as printed by upload.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write (default: batch-ID-report.csv here)."),
    ] = None,
) -> None:
    """Write a batch's report CSV: one masked line per row, safe to open in a spreadsheet."""
    settings = load_settings()
    target = output or Path(f"batch-{batch}-report.csv")
    # Written aside and renamed at the end, so a failure never leaves half a report.
    partial = target.with_name(target.name + ".part")
    try:
        with (
            session_scope(settings.database_url) as session,
            partial.open("w", encoding="utf-8", newline="") as out,
        ):
            actor = acting_user(session, settings)
            operator_actions.download_report(session, actor, batch_id=batch, now=utcnow())
            rows = write_report(session, batch_id=batch, out=out)
        partial.replace(target)
    except (NotFound, Forbidden) as exc:
        raise fail(str(exc)) from None
    except DBAPIError as exc:
        reason = str(exc.orig).partition("\n")[0]
        raise fail(f"cannot read the database at DATABASE_URL: {reason}") from None
    except OSError as exc:
        raise fail(f"cannot write {target}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    console.print(
        f"wrote {rows} rows to {target.resolve()}", markup=False, highlight=False, soft_wrap=True
    )
