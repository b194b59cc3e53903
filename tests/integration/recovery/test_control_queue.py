"""Control work and rows coming back never wait behind a backlog of rows: a sweep, or a row's
retry, runs while slow rows fill the workers."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from sqlalchemy import select, update

from distributor.broker import SWEEP_TASK, CeleryRowQueue, make_celery, rows_per_message
from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.models import Row
from tests.acceptance.conftest import (
    batch_state,
    card_number,
    enqueue,
    store_batch,
    wait_for_sent,
)
from tests.integration.pipeline.recovery_helpers import plan_fault
from tests.processes import ServiceProcess

BACKLOG_ROWS = 300
SLOW_ANSWER_MS = 400.0
"""Each Centrapay call takes this long: the backlog would take minutes on two threads."""
PROMPT_SECONDS = 10.0


def test_a_sweep_runs_promptly_while_a_backlog_of_rows_keeps_every_worker_thread_busy(
    pipeline_settings: Settings,
    start_service: Callable[..., ServiceProcess],
    control: httpx.Client,
) -> None:
    control.patch("/config", json={"latencyMs": SLOW_ANSWER_MS}).raise_for_status()
    backlog = store_batch(pipeline_settings, [card_number(i) for i in range(BACKLOG_ROWS)])
    # A batch whose last row has settled but that nobody closed: the sweep closes it.
    settled = store_batch(pipeline_settings, [card_number(0, prefix="2341")])
    with session_scope(pipeline_settings.database_url) as session:
        session.execute(update(Row).where(Row.batch_id == settled).values(state=RowState.SENT))
    enqueue(pipeline_settings, backlog)
    start_service("worker", WORKER_CONCURRENCY="2")
    wait_for_sent(pipeline_settings, backlog, 1)
    celery = make_celery(pipeline_settings)
    celery.send_task(SWEEP_TASK)
    sent_at = time.monotonic()
    while batch_state(pipeline_settings, settled).state != BatchState.DONE:
        waited = time.monotonic() - sent_at
        assert waited < PROMPT_SECONDS, f"the sweep has waited {waited:.0f}s behind the rows"
        time.sleep(0.1)
    celery.close()


SLOW_ROW_MS = 2_000.0
"""Each call takes this long, and the worker has one thread."""
COMING_BACK_PROMPT_SECONDS = 10.0
"""The row waits for the slow row in hand (2 s), then takes its own 2 s; a worker whose thread
worked through several backlog rows first (messages of many rows, or a retry queued behind
the backlog) would keep it 16 s or more: long enough, at Centrapay, for a recipient to claim
a card whose lost answer the row has to look up."""


def test_a_row_coming_back_after_a_backoff_runs_promptly_while_slow_rows_hold_the_thread(
    pipeline_settings: Settings,
    start_service: Callable[..., ServiceProcess],
    control: httpx.Client,
) -> None:
    control.patch("/config", json={"latencyMs": SLOW_ROW_MS}).raise_for_status()
    backlog = store_batch(pipeline_settings, [card_number(i) for i in range(40)])
    coming_back = store_batch(pipeline_settings, [card_number(0, prefix="2341")])
    with session_scope(pipeline_settings.database_url) as session:
        row_id = session.scalars(select(Row.id).where(Row.batch_id == coming_back)).one()
    enqueue(pipeline_settings, backlog)
    start_service("worker", WORKER_CONCURRENCY="1", CENTRAPAY_TIMEOUT_SECONDS="5")
    wait_for_sent(pipeline_settings, backlog, 1)
    celery = make_celery(pipeline_settings)
    CeleryRowQueue(celery).submit([(row_id, coming_back)], countdown=0.2, urgent=True)
    sent_at = time.monotonic()
    wait_for_sent(pipeline_settings, coming_back, 1)
    waited = time.monotonic() - sent_at
    celery.close()
    assert waited < COMING_BACK_PROMPT_SECONDS, f"the row waited {waited:.0f}s behind slow rows"


def test_a_row_that_comes_back_ends_its_message_and_the_rows_not_started_go_to_the_queue(
    pipeline_settings: Settings,
    start_service: Callable[..., ServiceProcess],
    control: httpx.Client,
) -> None:
    # One message of several rows, and after it one of another batch. The message's first
    # row meets a 5xx and comes back: the rest of its message go behind the other batch.
    rows = rows_per_message(pipeline_settings.centrapay_rate_per_second)
    assert rows > 1
    cards = [card_number(i) for i in range(rows)]
    shared = store_batch(pipeline_settings, cards)
    after = store_batch(pipeline_settings, [card_number(0, prefix="2341")])
    enqueue(pipeline_settings, shared)
    enqueue(pipeline_settings, after)
    plan_fault(control, "POST", "/api/external-assets", "5xx")
    start_service("worker", WORKER_CONCURRENCY="1")
    wait_for_sent(pipeline_settings, shared, len(cards))
    with session_scope(pipeline_settings.database_url) as session:
        query = select(Row.line_no, Row.sent_at).where(Row.batch_id == shared)
        sent_at = dict(session.execute(query).tuples().all())
        other_sent_at = session.scalars(select(Row.sent_at).where(Row.batch_id == after)).one()
    not_started = [moment for line_no, moment in sent_at.items() if line_no > 1]
    assert other_sent_at is not None and other_sent_at < min(not_started)
