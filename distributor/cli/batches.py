"""Commands about batches: upload, and status (once, or live with --watch)."""

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

from distributor import operator_actions
from distributor.access.actors import Actor
from distributor.broker import batch_dispatcher, make_celery
from distributor.cli.common import acting_user, app, console, fail, load_settings
from distributor.cli.watch import (
    WATCH_INTERVAL_SECONDS,
    Snapshot,
    print_status,
    read_snapshot,
    watch_batch,
)
from distributor.config import Settings
from distributor.constants import BatchState
from distributor.db import session_scope
from distributor.errors import ConfigError, DistributorError
from distributor.ingest import BatchOptions, IngestResult
from distributor.pipeline import scheduling
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings

PROBLEMS_SHOWN = 20
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT: what shells report for a command stopped by Ctrl-C


def _database_problem(exc: DBAPIError, database_url: str) -> str:
    where = make_url(database_url).render_as_string(hide_password=True)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    no_schema = reason.startswith("relation") or reason.startswith("no such table")
    hint = " (run `distributor db upgrade`)" if no_schema else ""
    return f"database {where}: {reason}{hint}"


@contextmanager
def batch_session(settings: Settings) -> Iterator[Session]:
    """A session whose failures end the command with one clear line, not a traceback."""
    try:
        with session_scope(settings.database_url) as session:
            yield session
    except DBAPIError as exc:
        raise fail(escape(_database_problem(exc, settings.database_url))) from None
    except DistributorError as exc:
        raise fail(escape(str(exc))) from None


@contextmanager
def acting_session(settings: Settings) -> Iterator[tuple[Session, Actor]]:
    """A ``batch_session`` and the user the command acts as in it (``acting_user``)."""
    with batch_session(settings) as session:
        yield session, acting_user(session, settings)


def batch_options(
    settings: Settings,
    *,
    name: str,
    asset_type: str | None,
    issuer: str | None,
    sender_name: str | None,
    description: str | None,
) -> BatchOptions:
    """A batch's defaults from the command's options, falling back on the settings."""
    return BatchOptions(
        name=name,
        asset_type=asset_type or settings.default_asset_type,
        issuer=issuer or settings.default_issuer,
        sender_name=sender_name,
        description=description,
    )


def print_ingest_result(result: IngestResult, file: Path) -> None:
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
    start_at: Annotated[
        str | None,
        typer.Option(
            help="Send later: start at this time, ISO 8601 with its UTC offset "
            "(2026-12-24T09:00+13:00); the batch waits as scheduled."
        ),
    ] = None,
) -> None:
    """Check a CSV of giftcards, store it as a batch and start sending it."""
    settings = load_settings()
    when = None
    if start_at is not None:
        if not start:
            raise fail("--start-at and --no-start contradict each other; choose one")
        try:
            when = scheduling.parse_start_at(start_at, now=utcnow(), field="--start-at")
        except DistributorError as exc:
            raise fail(escape(str(exc))) from None
    try:
        vault = vault_from_settings(settings)
    except ConfigError as exc:
        raise fail(escape(str(exc)), code=2) from None
    if file.stat().st_size > settings.upload_max_bytes:
        raise fail(
            f"{escape(file.name)} is larger than UPLOAD_MAX_BYTES ({settings.upload_max_bytes})"
        )
    options = batch_options(
        settings,
        name=name or file.name,
        asset_type=asset_type,
        issuer=issuer,
        sender_name=sender_name,
        description=description,
    )
    with file.open("rb") as stream, acting_session(settings) as (session, actor):
        uploaded = operator_actions.upload(
            session,
            actor,
            stream=stream,
            vault=vault,
            options=options,
            settings=settings,
            start=start,
            start_at=when,
            now=utcnow(),
        )
    result = uploaded.result
    print_ingest_result(result, file)
    if uploaded.state == BatchState.AWAITING_APPROVAL:
        console.print(
            f"batch {result.batch_id} awaits approval: another user with the approver role "
            f"runs `distributor approve {result.batch_id}` (or rejects it)"
        )
    elif when is not None:
        console.print(f"batch {result.batch_id} scheduled to start at {when.isoformat()}")
    elif uploaded.dispatch:
        dispatch_batch(settings, result.batch_id)
        console.print(f"batch {result.batch_id} started")


def dispatch_batch(settings: Settings, batch_id: int) -> None:
    """Ask a worker to queue the batch's rows; if Redis is down, beat's sweeper will."""
    try:
        batch_dispatcher(make_celery(settings))(batch_id)
    except (KombuError, RedisError, OSError) as exc:
        raise fail(
            escape(
                f"batch {batch_id} is running, but the queue (REDIS_URL) could not "
                f"be reached: {exc}; `distributor beat` queues its rows once it is back"
            )
        ) from None


@app.command()
def status(
    batch_id: Annotated[int, typer.Argument(help="The batch id.")],
    watch: Annotated[
        bool, typer.Option("--watch", help="Show live progress until the batch is finished.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between two refreshes of --watch.")
    ] = WATCH_INTERVAL_SECONDS,
) -> None:
    """Show a batch: progress, rows by state, failed rows by error code, transfers."""
    settings = load_settings()

    with batch_session(settings) as session:
        acting_user(session, settings)

    def read(*, transfers: bool = True) -> Snapshot:
        with batch_session(settings) as session:
            return read_snapshot(session, batch_id, transfers=transfers)

    if not watch:
        print_status(console, read())
        return
    try:
        watch_batch(console, read=lambda: read(transfers=False), interval=interval)
        print_status(console, read())
    except KeyboardInterrupt:
        console.print(f"stopped watching batch {batch_id}; the batch itself goes on")
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
