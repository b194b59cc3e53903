"""What ``distributor status`` shows of a batch: once, or live until the batch is finished.

Each refresh reads the batch in its own short transaction (``read_snapshot``), so watching a
batch for an hour holds no transaction open and always sees what the workers committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from distributor.batches import batch_counts, get_batch
from distributor.constants import BatchState, RowState
from distributor.models import Batch
from distributor.pipeline.clock import utcnow
from distributor.pipeline.transfer_status import transfer_summary
from distributor.progress import UNKNOWN_ERROR_CODE, Progress, batch_progress

WATCH_INTERVAL_SECONDS = 1.0
"""How often ``status --watch`` reads the batch again, unless told otherwise."""
FINISHED_STATES = (BatchState.DONE, BatchState.CANCELLED)
"""Batch states ``status --watch`` stops at."""
BAR_WIDTH = 40  # characters
UNRECORDED_TRANSFER = "not recorded"
TRANSFER_ID_PENDING = "transfer id pending"
"""The transfer table's line for sent rows whose transfer status is not known yet."""


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """A batch as one short transaction saw it: its rows by state, progress and transfers."""

    batch: Batch
    counts: dict[str, int]
    progress: Progress
    transfers: dict[str, int]
    """Sent rows by transfer status; empty when not read or when no row is sent."""

    @property
    def finished(self) -> bool:
        """True once the batch is done or cancelled."""
        return self.batch.state in FINISHED_STATES


def read_snapshot(session: Session, batch_id: int, *, transfers: bool = True) -> Snapshot:
    """The batch as it stands now; NotFound when there is none."""
    batch = get_batch(session, batch_id)
    counts = batch_counts(session, batch_id)
    sent = counts.get(RowState.SENT, 0) > 0
    return Snapshot(
        batch=batch,
        counts=counts,
        progress=batch_progress(session, batch, now=utcnow()),
        transfers=transfer_summary(session, batch_id) if transfers and sent else {},
    )


def duration(seconds: float) -> str:
    """``seconds`` as an operator reads it: 42s, 3m05s, 2h07m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_text(progress: Progress) -> str:
    """Settled of total, percent, rate and ETA on one line."""
    rate = "-" if progress.rows_per_second is None else _rate(progress.rows_per_second)
    eta = "-" if progress.eta_seconds is None else duration(progress.eta_seconds)
    return (
        f"{progress.settled}/{progress.total} settled ({progress.percent_done:.1f}%), "
        f"{rate} rows/s, ETA {eta}"
    )


def _rate(rows_per_second: float) -> str:
    # two decimals below 1 row/s, so a slow batch does not read as a stalled one (0.0)
    return f"{rows_per_second:.1f}" if rows_per_second >= 1 else f"{rows_per_second:.2f}"


def counts_text(counts: dict[str, int]) -> str:
    """The states the batch has rows in, with their counts: ``pending 3, sent 7``."""
    return ", ".join(f"{state} {count}" for state, count in counts.items() if count)


def plain_line(snapshot: Snapshot) -> str:
    """One line of progress, for output that is not a terminal (CI logs, pipes)."""
    batch = snapshot.batch
    line = (
        f"batch {batch.id} {batch.state}: {progress_text(snapshot.progress)}; "
        f"{counts_text(snapshot.counts)}"
    )
    if batch.state == BatchState.PAUSED and batch.pause_reason:
        line += f"; paused: {batch.pause_reason}"
    return line


def live_view(snapshot: Snapshot) -> RenderableType:
    """The live display: a bar of settled rows, the counts, rate, ETA and any pause reason."""
    batch, progress = snapshot.batch, snapshot.progress
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=100.0, completed=progress.percent_done, width=BAR_WIDTH),
        Text(progress_text(progress)),
    )
    parts: list[RenderableType] = [
        Text.assemble(f"batch {batch.id} ", (batch.name, "bold"), f": {batch.state}"),
        bar,
        Text(counts_text(snapshot.counts), style="dim"),
    ]
    if batch.state == BatchState.PAUSED and batch.pause_reason:
        parts.append(Text(f"paused: {batch.pause_reason}", style="yellow"))
    return Group(*parts)


def watch_batch(
    console: Console,
    *,
    read: Callable[[], Snapshot],
    interval: float,
) -> Snapshot:
    """Show the batch every ``interval`` seconds until it is finished; its last snapshot.

    On a terminal the display is live (redrawn in place); anywhere else, such as a CI log,
    each refresh prints one plain line. Ctrl-C raises KeyboardInterrupt, the display
    cleaned up.
    """
    snapshot = read()
    # is_interactive is decided when the console is made; is_terminal looks at the stream
    # written to now, which a test runner may have swapped for a buffer
    if not (console.is_interactive and console.is_terminal):
        while True:
            console.print(plain_line(snapshot), markup=False, highlight=False, soft_wrap=True)
            if snapshot.finished:
                return snapshot
            time.sleep(interval)
            snapshot = read()
    with Live(live_view(snapshot), console=console, auto_refresh=False, transient=True) as live:
        while not snapshot.finished:
            time.sleep(interval)
            snapshot = read()
            live.update(live_view(snapshot), refresh=True)
    return snapshot


def print_status(console: Console, snapshot: Snapshot) -> None:
    """The batch, its progress, rows by state, failed rows by error code and transfers."""
    batch, progress = snapshot.batch, snapshot.progress
    console.print(f"batch [bold]{batch.id}[/] {escape(batch.name)}: {batch.state}")
    console.print(
        f"{batch.asset_type} from {batch.issuer}, {batch.total_rows} rows, "
        f"created {batch.created_at:%Y-%m-%d %H:%M:%S %Z}"
    )
    if batch.pause_reason:
        console.print(f"paused: {escape(batch.pause_reason)}")
    if batch.start_at is not None and batch.state == BatchState.SCHEDULED:
        console.print(
            f"scheduled to start at {batch.start_at:%Y-%m-%d %H:%M:%S %Z}; "
            f"`distributor start {batch.id}` starts it now"
        )
    if batch.notice:
        console.print(f"note: {escape(batch.notice)}")
    if batch.started_at is not None:
        console.print(f"progress: {progress_text(progress)}", highlight=False)
    if progress.delivery_unknown:
        console.print(
            f"delivery unknown: {progress.delivery_unknown} failed or cancelled rows lost an "
            "answer that could not be checked; a retry looks before it sends"
        )
    table = Table("state", "rows")
    for state, count in snapshot.counts.items():
        table.add_row(state, str(count), style=None if count else "dim")
    console.print(table)
    if progress.failed_by_error_code:
        _print_failed(console, snapshot)
    if snapshot.transfers:
        _print_transfers(console, snapshot)


def _print_failed(console: Console, snapshot: Snapshot) -> None:
    groups = snapshot.progress.failed_by_error_code
    table = Table("error code", "rows", title="failed rows")
    for code, count in groups.items():
        table.add_row(escape(code), str(count))
    console.print(table)
    if snapshot.batch.state == BatchState.CANCELLED:
        return  # a cancelled batch is never retried
    console.print("send them again with:")
    batch_id = snapshot.batch.id
    for code in groups:
        command = f"  distributor retry {batch_id} --error-code {code}"
        if code == UNKNOWN_ERROR_CODE:  # rows failed without a code: only "all failed" finds them
            command = f"  distributor retry {batch_id}   (every failed row)"
        console.print(command, markup=False, highlight=False, soft_wrap=True)


def _print_transfers(console: Console, snapshot: Snapshot) -> None:
    table = Table("transfer status", "rows", title="transfers of sent rows")
    for status, count in snapshot.transfers.items():
        table.add_row(status, str(count), style=None if count else "dim")
    pending = snapshot.progress.transfer_id_pending
    if pending:
        table.add_row(TRANSFER_ID_PENDING, str(pending))
    unrecorded = snapshot.progress.sent - sum(snapshot.transfers.values()) - pending
    if unrecorded > 0:
        table.add_row(UNRECORDED_TRANSFER, str(unrecorded))
    console.print(table)
