"""A task that cannot reach Postgres runs again once it can, instead of being forgotten."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis

from distributor.broker import ROW_TASK
from distributor.config import Settings
from distributor.constants import CONTROL_QUEUE
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


def test_a_row_task_cut_off_by_an_outage_comes_back_on_the_control_queue(
    pipeline_settings: Settings,
    start_service: Callable[..., ServiceProcess],
    postgres_proxy: TcpProxy,
) -> None:
    """Its retry waits (with its countdown) ahead of the row queue's backlog, not behind it:
    its call may have gone out, and a late lookup may find the card already claimed."""
    batch_id = store_batch(pipeline_settings, [card_number(0)])
    worker = start_service(
        "worker", DATABASE_URL=postgres_proxy.url(pipeline_settings.database_url)
    )
    postgres_proxy.cut()
    enqueue(pipeline_settings, batch_id)
    deadline = time.monotonic() + RECOVERY_SECONDS
    while not (queues := _queues_of_waiting_retries(pipeline_settings.redis_url)):
        assert time.monotonic() < deadline, worker.log_text()[-2000:]
        time.sleep(0.1)
    assert queues == {CONTROL_QUEUE}
    postgres_proxy.restore()
    assert wait_until_settled(pipeline_settings, batch_id, timeout=RECOVERY_SECONDS) == {"sent": 1}


def _queues_of_waiting_retries(redis_url: str) -> set[str]:
    """The queues of the row-task retries a worker holds until their countdown ends (kombu
    keeps each message it has taken but not acked in its ``unacked`` hash)."""
    client = redis.Redis.from_url(redis_url)
    try:
        held = [json.loads(raw)[0] for raw in client.hvals("unacked")]
    finally:
        client.close()
    return {
        message["properties"]["delivery_info"]["routing_key"]
        for message in held
        if message["headers"].get("task") == ROW_TASK and message["headers"].get("retries")
    }
