"""``distributor run FILE.csv``: the whole pipeline in this process, for a first try."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from distributor.batches import batch_counts, get_batch
from distributor.cli.batches import (
    PROBLEMS_SHOWN,
    batch_options,
    batch_session,
    print_ingest_result,
)
from distributor.cli.common import app, console, fail, load_settings
from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.errors import ConfigError, DistributorError
from distributor.ingest import BatchOptions, ingest_csv
from distributor.progress import batch_progress
from distributor.report import write_report
from distributor.standalone.runner import (
    FINAL_NOTIFY_SECONDS,
    StandaloneRunner,
    standalone_settings,
)
from distributor.vault import vault_from_settings

REFRESH_SECONDS = 0.5
SETTLED_BATCH_STATES = (BatchState.DONE, BatchState.CANCELLED, BatchState.PAUSED)


def _store(settings: Settings, file: Path, options: BatchOptions) -> int:
    with file.open("rb") as stream, batch_session(settings) as session:
        result = ingest_csv(
            stream,
            session=session,
            vault=vault_from_settings(settings),
            options=options,
            max_rows=settings.upload_max_rows,
            pin_required=settings.pin_required,
        )
    print_ingest_result(result, file)
    return result.batch_id


def _watch(runner: StandaloneRunner, settings: Settings, batch_id: int) -> str:
    """Show a progress bar until the batch settles; its final state."""
    columns = (
        TextColumn("[bold]batch {task.fields[batch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    next_sweep = time.monotonic() + settings.sweep_interval_seconds
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("sending", total=None, batch=batch_id, rate="")
        while True:
            with session_scope(settings.database_url) as session:
                batch = get_batch(session, batch_id)
                progress = batch_progress(session, batch)
            rate = f"{progress.rows_per_second:.1f} rows/s" if progress.rows_per_second else ""
            bar.update(task, total=progress.total, completed=progress.settled, rate=rate)
            if batch.state in SETTLED_BATCH_STATES:
                return batch.state
            if time.monotonic() >= next_sweep:
                runner.sweep()
                next_sweep = time.monotonic() + settings.sweep_interval_seconds
            time.sleep(REFRESH_SECONDS)


def _say_how_it_goes_on(settings: Settings, batch_id: int) -> None:
    """One line on what a run with --batch does with the batch as it stands."""
    try:
        with session_scope(settings.database_url) as session:
            batch = get_batch(session, batch_id)
    except DistributorError as exc:
        raise fail(escape(str(exc))) from None
    if batch.state == BatchState.PAUSED:
        reason = f" ({batch.pause_reason})" if batch.pause_reason else ""
        console.print(f"batch {batch_id} was paused{escape(reason)}; resuming it")
    elif batch.state in (BatchState.DONE, BatchState.CANCELLED):
        console.print(f"batch {batch_id} is {batch.state}: nothing left to send")


def _summary(settings: Settings, batch_id: int, report_path: Path) -> dict[str, int]:
    with session_scope(settings.database_url) as session:
        batch = get_batch(session, batch_id)
        counts = batch_counts(session, batch_id)
        progress = batch_progress(session, batch)
        with report_path.open("w", newline="", encoding="utf-8") as out:
            rows = write_report(session, batch_id=batch_id, out=out)
    table = Table("state", "rows", title=f"batch {batch_id}: {batch.state}")
    for state, count in counts.items():
        if count:
            table.add_row(state, str(count))
    console.print(table)
    if progress.failed_by_error_code:
        failed = Table("error code", "rows", title="failed")
        for code, count in list(progress.failed_by_error_code.items())[:PROBLEMS_SHOWN]:
            failed.add_row(code, str(count))
        console.print(failed)
    if batch.state == BatchState.PAUSED:
        console.print(f"[yellow]paused:[/] {escape(batch.pause_reason or '')}")
        console.print(f"once that is fixed, run again with --batch {batch_id} to go on")
    console.print(f"report of {rows} rows: {report_path}")
    return counts


@app.command()
def run(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV to send."),
    ],
    asset_type: Annotated[
        str | None, typer.Option("--type", help="Asset type [default: DEFAULT_ASSET_TYPE].")
    ] = None,
    issuer: Annotated[str | None, typer.Option(help="Issuer [default: DEFAULT_ISSUER].")] = None,
    sender_name: Annotated[
        str | None, typer.Option(help="Sender name for rows without one.")
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="Description for rows without one.")
    ] = None,
    state_dir: Annotated[
        Path, typer.Option(help="Where the SQLite database and the secret key are kept.")
    ] = Path(".distributor"),
    batch: Annotated[
        int | None, typer.Option(help="Go on with this batch of an earlier run instead.")
    ] = None,
) -> None:
    """Send a CSV in this one process: SQLite, no Redis, the sandbox unless configured."""
    base = load_settings()
    report_path = file.with_name(f"{file.stem}.report.csv")
    try:
        environment = standalone_settings(base=base, state_dir=state_dir)
        with environment as standalone:
            settings = standalone.settings
            target = (
                "the local sandbox (a dry run)"
                if standalone.sandbox
                else settings.centrapay_base_url
            )
            console.print(f"sending through {target}; state in {state_dir}/")
            batch_id = batch or _store(
                settings,
                file,
                batch_options(
                    settings,
                    name=file.name,
                    asset_type=asset_type,
                    issuer=issuer,
                    sender_name=sender_name,
                    description=description,
                ),
            )
            if batch is not None:
                _say_how_it_goes_on(settings, batch_id)
            runner = StandaloneRunner(settings)
            try:
                runner.start(batch_id)
                state = _watch(runner, settings, batch_id)
                runner.settle_transfer_ids()
                runner.send_notifications(wait_seconds=FINAL_NOTIFY_SECONDS)
            except KeyboardInterrupt:
                console.print(f"interrupted: run again with --batch {batch_id} to go on")
                state = BatchState.PAUSED
            finally:
                runner.stop()
            counts = _summary(settings, batch_id, report_path)
    except ConfigError as exc:
        raise fail(escape(str(exc)), code=2) from None
    if state != BatchState.DONE or counts[RowState.FAILED]:
        raise typer.Exit(1)
