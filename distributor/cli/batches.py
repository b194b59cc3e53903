"""Commands about batches: upload, status (and later retry, cancel, pause, resume, report)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from distributor.batches import batch_counts, get_batch
from distributor.broker import batch_dispatcher, make_celery
from distributor.cli.common import app, console, fail, load_settings
from distributor.config import Settings
from distributor.db import session_scope
from distributor.errors import ConfigError, DistributorError
from distributor.ingest import BatchOptions, IngestResult, ingest_csv
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings

PROBLEMS_SHOWN = 20


def _database_problem(exc: DBAPIError, database_url: str) -> str:
    where = make_url(database_url).render_as_string(hide_password=True)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    no_schema = reason.startswith("relation") or reason.startswith("no such table")
    hint = " (run `distributor db upgrade`)" if no_schema else ""
    return f"database {where}: {reason}{hint}"


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A session whose failures end the command with one clear line, not a traceback."""
    try:
        with session_scope(settings.database_url) as session:
            yield session
    except DBAPIError as exc:
        raise fail(escape(_database_problem(exc, settings.database_url))) from None
    except DistributorError as exc:
        raise fail(escape(str(exc))) from None


def _print_result(result: IngestResult, file: Path) -> None:
    total = sum(result.counts.values())
    console.print(f"batch [bold]{result.batch_id}[/] stored from {escape(file.name)}: {total} rows")
    counts = Table("state", "rows")
    for state, count in result.counts.items():
        counts.add_row(state, str(count))
    console.print(counts)
    if not result.problems:
        return
    problems = Table("line", "field", "code", "problem", title="problems")
    for problem in result.problems[:PROBLEMS_SHOWN]:
        problems.add_row(str(problem.line), problem.field, problem.code, escape(problem.message))
    console.print(problems)
    if total - result.counts.get("pending", 0) > PROBLEMS_SHOWN:
        console.print(f"only the first {PROBLEMS_SHOWN} problems are shown")


@app.command()
def upload(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV of recipientAlias,cardNumber,pin,message (header optional).",
        ),
    ],
    asset_type: Annotated[
        str | None, typer.Option("--type", help="Asset type [default: DEFAULT_ASSET_TYPE].")
    ] = None,
    issuer: Annotated[
        str | None, typer.Option(help="Card issuer [default: DEFAULT_ISSUER].")
    ] = None,
    sender_name: Annotated[
        str | None, typer.Option(help="Sender name for rows without one.")
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="Description for rows without one.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Batch name [default: the file name].")] = None,
    start: Annotated[
        bool, typer.Option(help="Start sending at once; --no-start leaves the batch queued.")
    ] = True,
) -> None:
    """Check a CSV of giftcards, store it as a batch and start sending it."""
    settings = load_settings()
    try:
        vault = vault_from_settings(settings)
    except ConfigError as exc:
        raise fail(escape(str(exc)), code=2) from None
    if file.stat().st_size > settings.upload_max_bytes:
        raise fail(
            f"{escape(file.name)} is larger than UPLOAD_MAX_BYTES ({settings.upload_max_bytes})"
        )
    options = BatchOptions(
        name=name or file.name,
        asset_type=asset_type or settings.default_asset_type,
        issuer=issuer or settings.default_issuer,
        sender_name=sender_name,
        description=description,
    )
    with file.open("rb") as stream, _session(settings) as session:
        result = ingest_csv(
            stream,
            session=session,
            vault=vault,
            options=options,
            max_rows=settings.upload_max_rows,
            pin_required=settings.pin_required,
        )
        if start:
            batch_control.start(session, batch_id=result.batch_id, now=utcnow())
    _print_result(result, file)
    if start:
        _dispatch(settings, result.batch_id)


def _dispatch(settings: Settings, batch_id: int) -> None:
    """Ask a worker to queue the batch's rows; if Redis is down, beat's sweeper will."""
    try:
        batch_dispatcher(make_celery(settings))(batch_id)
    except (KombuError, RedisError, OSError) as exc:
        raise fail(
            escape(
                f"batch {batch_id} is stored and running, but the queue (REDIS_URL) could not "
                f"be reached: {exc}; `distributor beat` queues its rows once it is back"
            )
        ) from None
    console.print(f"batch {batch_id} started")


@app.command()
def status(batch_id: Annotated[int, typer.Argument(help="The batch id.")]) -> None:
    """Show a batch and its rows by state."""
    settings = load_settings()
    with _session(settings) as session:
        batch = get_batch(session, batch_id)
        counts = batch_counts(session, batch_id)
    console.print(f"batch [bold]{batch.id}[/] {escape(batch.name)}: {batch.state}")
    console.print(
        f"{batch.asset_type} from {batch.issuer}, {batch.total_rows} rows, "
        f"created {batch.created_at:%Y-%m-%d %H:%M:%S %Z}"
    )
    if batch.pause_reason:
        console.print(f"paused: {escape(batch.pause_reason)}")
    table = Table("state", "rows")
    for state, count in counts.items():
        table.add_row(state, str(count), style=None if count else "dim")
    console.print(table)
