"""Standalone mode's engine: one process, an SQLite file, no Redis, no Celery.

``standalone_settings`` fills in what a first try lacks: a database file and a secret key
kept in a state folder, and (when CENTRAPAY_BASE_URL is not set) the sandbox, started in
this process. ``StandaloneRunner`` then runs the same row code as the workers, on a
thread pool with an in-process token bucket. It keeps no answer log (``answer_log`` lives
in Redis, and nothing here would read an in-process one): the dashboard's chart of such a
batch draws each row's last answer.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from distributor import migrate
from distributor.batches import get_batch
from distributor.config import Settings
from distributor.constants import BatchState
from distributor.db import session_scope
from distributor.errors import ConfigError
from distributor.notifications import Notifier
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import build_context
from distributor.pipeline.queueing import dispatch
from distributor.pipeline.steps import advance_row
from distributor.pipeline.sweeper import sweep
from distributor.pipeline.transfer_ids import sync_transfer_ids
from distributor.ratelimit.local import LocalTokenBucket
from distributor.standalone.local_queue import LocalRowQueue

logger = logging.getLogger(__name__)

DATABASE_FILE = "distributor.sqlite3"
KEY_FILE = "secret.key"
SANDBOX_API_KEY = "standalone-key"
SANDBOX_ACCOUNT = "standalone-account"
SANDBOX_RATE_PER_SECOND = 100.0
FINAL_NOTIFY_SECONDS = 30.0
"""How long the end of a run waits for the receiver of BATCH_NOTIFY_URL to accept."""
FINAL_NOTIFY_PAUSE_SECONDS = 1.0
FINAL_SYNC_RUNS = 5
"""Transfer-id sync runs at the end of a run, for a report that holds every id it can."""
"""Against the local sandbox a dry run need not crawl at a production rate."""


@dataclass(frozen=True, kw_only=True)
class StandaloneSettings:
    """The settings of one standalone run, and whether it talks to the local sandbox."""

    settings: Settings
    sandbox: bool


def _secret(state_dir: Path) -> str:
    """The secret kept in the state folder, made on first use (readable by the owner only)."""
    path = state_dir / KEY_FILE
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@contextmanager
def standalone_settings(*, base: Settings, state_dir: Path) -> Iterator[StandaloneSettings]:
    """Settings for a run in ``state_dir``: its SQLite file migrated, the sandbox if needed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    update: dict[str, object] = {"database_url": f"sqlite:///{state_dir / DATABASE_FILE}"}
    if base.distributor_secret_key is None:
        update["distributor_secret_key"] = SecretStr(_secret(state_dir))
    with ExitStack() as stack:
        sandbox = base.centrapay_base_url is None
        if sandbox:
            # Imported here: a run against a real Centrapay never loads the sandbox.
            import centrapay_sandbox

            sandbox_settings = centrapay_sandbox.SandboxSettings(
                _env_file=None,
                api_keys=[f"{SANDBOX_API_KEY}:{SANDBOX_ACCOUNT}"],
            )
            try:
                handle = stack.enter_context(centrapay_sandbox.running_sandbox(sandbox_settings))
            except centrapay_sandbox.ConfigError as exc:
                raise ConfigError(str(exc)) from exc
            update |= {
                "centrapay_base_url": handle.base_url,
                "centrapay_api_key": SecretStr(SANDBOX_API_KEY),
                "centrapay_account_id": SANDBOX_ACCOUNT,
            }
            if "centrapay_rate_per_second" not in base.model_fields_set:
                update["centrapay_rate_per_second"] = SANDBOX_RATE_PER_SECOND
        settings = base.model_copy(update=update)
        migrate.upgrade(settings.database_url)
        yield StandaloneSettings(settings=settings, sandbox=sandbox)


class StandaloneRunner:
    """The pipeline of one process: rows advanced on threads, swept now and then."""

    def __init__(self, settings: Settings) -> None:
        assert settings.centrapay_base_url is not None
        self.settings = settings
        bucket = LocalTokenBucket(
            rate_per_second=settings.centrapay_rate_per_second, burst=settings.centrapay_burst
        )
        self._context = build_context(settings, bucket=bucket, base_url=settings.centrapay_base_url)
        self._queue = LocalRowQueue(
            lambda row_id: advance_row(self._context, row_id),
            threads=settings.worker_concurrency,
        )
        # Sent from this process: standalone mode has no Celery to retry them.
        self._notifier = Notifier(settings) if settings.batch_notify_url is not None else None

    def start(self, batch_id: int) -> str:
        """Start a queued batch, resume a paused one, or go on with a running one, and queue
        its ready rows; the state the batch was in (a done or cancelled one is left so)."""
        with session_scope(self.settings.database_url) as session:
            state = get_batch(session, batch_id).state
            if state == BatchState.QUEUED:
                batch_control.start(session, batch_id=batch_id, now=utcnow())
            elif state == BatchState.PAUSED:
                batch_control.resume(session, batch_id=batch_id)
        dispatch(database_url=self.settings.database_url, queue=self._queue, batch_id=batch_id)
        return state

    def sweep(self) -> None:
        """Take back rows whose lease ran out; close the batch when nothing is left; look
        for transfer ids whose answers were lost."""
        sweep(database_url=self.settings.database_url, queue=self._queue, watch=self._queue)
        self.sync_transfer_ids()
        self.send_notifications()

    def send_notifications(self, *, wait_seconds: float = 0.0) -> None:
        """Completion notifications that are due, once each; for up to ``wait_seconds``
        more, the ones that failed again after their backoff (the end of a run)."""
        if self._notifier is None:
            return
        self._notifier.send_ready()
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline and self._notifier.unsent():
            time.sleep(FINAL_NOTIFY_PAUSE_SECONDS)
            self._notifier.send_ready()

    def sync_transfer_ids(self) -> int:
        """One run of the transfer-id sync; how many sent rows still wait for their id."""
        report = sync_transfer_ids(
            database_url=self.settings.database_url, client=self._context.client
        )
        return report.pending

    def settle_transfer_ids(self) -> None:
        """Before the report: a few more sync runs while sent rows wait for their id."""
        for _ in range(FINAL_SYNC_RUNS):
            if not self.sync_transfer_ids():
                return

    def stop(self) -> None:
        """Let rows in flight finish their step, take no new one, and release the threads."""
        self._context.stopping.set()
        self._queue.close()
        self._context.close()
        if self._notifier is not None:
            self._notifier.close()
