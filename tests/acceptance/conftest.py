"""The whole system: a real sandbox on a loopback port, real worker and beat processes,
real Postgres and Redis. Exactly-once is judged by the sandbox's ledger."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from centrapay_sandbox.server import SandboxHandle
from distributor.batches import batch_counts
from distributor.broker import CeleryRowQueue, make_celery
from distributor.config import Settings
from distributor.constants import UNSETTLED_STATES, BatchState
from distributor.db import session_scope
from distributor.models import Batch, Row
from distributor.pipeline.queueing import dispatch
from distributor.vault import vault_from_settings
from tests.conftest import SANDBOX_ACCOUNT
from tests.factories import store_running_batch
from tests.processes import ServiceProcess, service_env

SETTLE_TIMEOUT_SECONDS = 60.0
BATCH_CLOSE_GRACE_SECONDS = 5.0


@pytest.fixture
def pipeline_settings(settings: Settings, sandbox: SandboxHandle) -> Settings:
    """Settings of a fast test run: short leases, timeouts and backoffs."""
    return settings.model_copy(
        update={
            "centrapay_base_url": sandbox.base_url,
            "centrapay_api_key": settings.centrapay_api_key,
            "centrapay_account_id": SANDBOX_ACCOUNT,
            "centrapay_timeout_seconds": 1.0,
            "centrapay_rate_per_second": 500.0,
            "centrapay_burst": 50,
            "lease_seconds": 4.0,
            "retry_backoff_seconds": 0.1,
            "retry_backoff_max_seconds": 0.5,
            "max_auto_retries": 10,
            "sweep_interval_seconds": 1.0,
            "worker_concurrency": 8,
        }
    )


@pytest.fixture
def start_service(
    tmp_path: Path, pipeline_settings: Settings
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``distributor worker`` or ``beat`` processes; all are stopped after the test."""
    started: list[ServiceProcess] = []

    def start(kind: str, **env: str) -> ServiceProcess:
        args = [kind] if kind == "worker" else [kind, "--schedule-file", str(tmp_path / "beat")]
        ready = "ready." if kind == "worker" else "beat: Starting"
        process = ServiceProcess(
            args,
            env=service_env(pipeline_settings, **env),
            log_path=tmp_path / f"{kind}-{len(started)}.log",
            ready=ready,
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


def card_number(index: int, *, prefix: str = "2340") -> str:
    """An 11-digit card number the sandbox loads with any PIN (unless ``prefix`` is magic)."""
    return f"{prefix}{index:07d}"


def store_batch(settings: Settings, cards: list[str]) -> int:
    """A running batch with one pending row per card, each to its own phone."""
    rows = [(card, "1234", f"+6422{line:07d}") for line, card in enumerate(cards, start=1)]
    return store_running_batch(settings, rows)


def enqueue(settings: Settings, batch_id: int) -> int:
    """Put the batch's ready rows on the real Redis queue."""
    queue = CeleryRowQueue(make_celery(settings))
    return dispatch(database_url=settings.database_url, queue=queue, batch_id=batch_id)


def rows_by_state(settings: Settings, batch_id: int) -> dict[str, int]:
    """How many rows of the batch are in each state."""
    with session_scope(settings.database_url) as session:
        counts = batch_counts(session, batch_id)
    return {state: count for state, count in counts.items() if count}


def wait_until_settled(
    settings: Settings, batch_id: int, *, timeout: float = SETTLE_TIMEOUT_SECONDS
) -> dict[str, int]:
    """Poll until no row of the batch is left to work on and a running batch is closed;
    its counts by state.

    The worker closes a batch in a transaction of its own, just after the last row's, so
    the close is waited for too, for at most ``BATCH_CLOSE_GRACE_SECONDS``: a batch still
    running after that is left for the caller's assertions to report.
    """
    deadline = time.monotonic() + timeout
    settled_at: float | None = None
    while time.monotonic() < deadline:
        counts = rows_by_state(settings, batch_id)
        if not any(counts.get(state, 0) for state in UNSETTLED_STATES):
            settled_at = settled_at or time.monotonic()
            closed = batch_state(settings, batch_id).state != BatchState.RUNNING
            if closed or time.monotonic() - settled_at > BATCH_CLOSE_GRACE_SECONDS:
                return counts
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not settle: {rows_by_state(settings, batch_id)}")


def wait_for_sent(settings: Settings, batch_id: int, at_least: int) -> None:
    """Poll until at least ``at_least`` rows of the batch are sent."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while rows_by_state(settings, batch_id).get("sent", 0) < at_least:
        assert time.monotonic() < deadline, "rows are not being sent"
        time.sleep(0.05)


def rows_by_card(settings: Settings, batch_id: int) -> dict[str, Row]:
    """The batch's rows as stored, by their card number."""
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(Row).where(Row.batch_id == batch_id)).all()
        return {vault.decrypt(row.card_number_enc or b""): row for row in rows}


def batch_state(settings: Settings, batch_id: int) -> Batch:
    """The batch as stored."""
    with session_scope(settings.database_url) as session:
        return session.get_one(Batch, batch_id)


def card_counts(control: httpx.Client, cards: list[str]) -> dict[str, dict[str, int]]:
    """The sandbox ledger's loads and transfers for each card."""
    ledger = control.get("/ledger").json()["cards"]
    empty = {"loads": 0, "repeatLoads": 0, "transfers": 0}
    return {card: ledger.get(card, empty) for card in cards}


def assert_each_sent_once(control: httpx.Client, cards: list[str]) -> None:
    """Every card loaded exactly once and transferred exactly once."""
    counts = card_counts(control, cards)
    wrong = {card: c for card, c in counts.items() if (c["loads"], c["transfers"]) != (1, 1)}
    assert not wrong, f"cards not loaded and transferred exactly once: {wrong}"
