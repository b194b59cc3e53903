"""Control work never waits behind rows: a sweep runs while a backlog fills the workers."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from sqlalchemy import update

from distributor.broker import SWEEP_TASK, make_celery
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
