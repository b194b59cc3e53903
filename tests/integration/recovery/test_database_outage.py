"""A task that cannot reach Postgres runs again once it can, instead of being forgotten."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from distributor.config import Settings
from tests.acceptance.conftest import card_number, enqueue, store_batch, wait_until_settled
from tests.integration.recovery.tcp_proxy import TcpProxy
from tests.processes import ServiceProcess

ROWS = 20
OUTAGE_SECONDS = 3.0
RECOVERY_SECONDS = 40.0
"""Backoff doubles from 1 s with full jitter, up to 30 s: well inside this."""


@pytest.fixture
def postgres_proxy(pipeline_settings: Settings) -> Iterator[TcpProxy]:
    """A TCP forwarder to the test Postgres, for the worker alone to go through."""
    where = urlsplit(pipeline_settings.database_url.replace("+psycopg", ""))
    proxy = TcpProxy(target=(where.hostname or "127.0.0.1", where.port or 5432))
    yield proxy
    proxy.cut()


def test_row_tasks_that_cannot_reach_postgres_are_retried_until_it_is_back(
    pipeline_settings: Settings,
    start_service: Callable[..., ServiceProcess],
    postgres_proxy: TcpProxy,
) -> None:
    # No beat: nothing but the tasks' own retries can bring these rows back.
    batch_id = store_batch(pipeline_settings, [card_number(i) for i in range(ROWS)])
    worker = start_service(
        "worker", DATABASE_URL=postgres_proxy.url(pipeline_settings.database_url)
    )
    postgres_proxy.cut()
    enqueue(pipeline_settings, batch_id)  # straight to Postgres and Redis, not proxied
    time.sleep(OUTAGE_SECONDS)
    assert "DatabaseUnavailable" in worker.log_text() or "OperationalError" in worker.log_text()
    postgres_proxy.restore()
    counts = wait_until_settled(pipeline_settings, batch_id, timeout=RECOVERY_SECONDS)
    assert counts == {"sent": ROWS}, counts
