"""Batches written straight to the database for ``distributor status``, and ways to run it."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from typer.testing import CliRunner

from distributor.cli import app
from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.models import Batch, Row
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings
from tests.factories import make_batch, make_row
from tests.processes import service_env

COLUMNS = "120"
TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM")
"""Variables that make Rich take a pipe for a terminal; unset unless a test wants one."""
STATUS_WATCH = (sys.executable, "-m", "distributor", "status", "--watch")
WATCH_INTERVAL = "0.2"  # seconds
LINE_TIMEOUT_SECONDS = 20.0
EXIT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, kw_only=True)
class Rows:
    """``count`` rows in ``state``, failed with ``error_code`` or sent with ``transfer_status``."""

    count: int
    state: str
    error_code: str | None = None
    transfer_status: str | None = None


def store_batch(
    settings: Settings,
    rows: list[Rows],
    *,
    state: str = BatchState.RUNNING,
    pause_reason: str | None = None,
    started_ago: timedelta | None = timedelta(seconds=2),
) -> int:
    """A batch holding ``rows``, started ``started_ago`` (not started when None); its id."""
    vault = vault_from_settings(settings)
    now = utcnow()
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state=state, name="december.csv")
        batch.pause_reason = pause_reason
        batch.started_at = None if started_ago is None else now - started_ago
        line = 0
        for group in rows:
            for _ in range(group.count):
                line += 1
                row = make_row(
                    session,
                    batch=batch,
                    vault=vault,
                    card_number=f"40001234{line:05d}",
                    state=group.state,
                    line_no=line,
                )
                row.error_code = group.error_code
                row.transfer_status = group.transfer_status
                row.sent_at = now if group.state == RowState.SENT else None
                row.transfer_id = f"transfer-{line}" if group.state == RowState.SENT else None
        batch.total_rows = line
        return batch.id


def finish_batch(settings: Settings, batch_id: int) -> None:
    """What the workers do in the end: every unsettled row sent, the batch done."""
    now = utcnow()
    with session_scope(settings.database_url) as session:
        session.execute(
            update(Row)
            .where(Row.batch_id == batch_id, Row.state != RowState.SENT)
            .values(state=RowState.SENT, transfer_status="created", sent_at=now)
        )
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(state=BatchState.DONE, pause_reason=None, finished_at=now)
        )


def flat(text: str) -> str:
    """Output with each run of spaces made one, so table cells compare whatever their width."""
    return " ".join(text.split())


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a CLI child process: the test's settings, output to a pipe."""
    env = service_env(settings, COLUMNS=COLUMNS)
    for name in TERMINAL_VARIABLES:
        env.pop(name, None)
    return {**env, **extra}


class Watcher:
    """``distributor status BATCH --watch`` as a child process, its stdout read as it comes."""

    def __init__(self, settings: Settings, batch_id: int, **env: str) -> None:
        self.process = subprocess.Popen(
            [*STATUS_WATCH, str(batch_id), "--interval", WATCH_INTERVAL],
            env=child_env(settings, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, *, times: int = 1) -> str:
        """Wait until ``times`` lines of output hold ``text``; the output so far."""
        deadline = time.monotonic() + LINE_TIMEOUT_SECONDS
        while sum(text in line for line in self.seen) < times:
            try:
                self.seen.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no {text!r} in the output:\n{''.join(self.seen)}") from None
        return "".join(self.seen)

    def interrupt(self) -> None:
        """Ctrl-C, as the terminal sends it."""
        self.process.send_signal(signal.SIGINT)

    def finish(self) -> tuple[int, str, str]:
        """Wait for the process to exit: exit code, all of stdout, stderr."""
        code = self.process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        self.reader.join(timeout=EXIT_TIMEOUT_SECONDS)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        assert self.process.stderr is not None
        return code, "".join(self.seen), self.process.stderr.read()

    def stop(self) -> None:
        """Kill the process if the test left it running, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=EXIT_TIMEOUT_SECONDS)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
