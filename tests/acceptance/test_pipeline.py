"""Rows go end to end through a real worker, exactly once per card, whatever happens."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import redis

from distributor.broker import CeleryRowQueue, make_celery
from distributor.config import Settings
from distributor.db import session_scope
from distributor.pipeline.clock import utcnow
from distributor.pipeline.retry import retry
from distributor.vault import vault_from_settings
from tests.acceptance.conftest import (
    SANDBOX_ACCOUNT,
    assert_each_sent_once,
    batch_state,
    card_counts,
    card_number,
    enqueue,
    rows_by_card,
    rows_by_state,
    store_batch,
    wait_for_sent,
    wait_until_settled,
)
from tests.processes import ServiceProcess, free_port

StartService = Callable[..., ServiceProcess]


def test_a_batch_goes_end_to_end_and_each_card_is_loaded_and_transferred_once(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    cards = [card_number(i) for i in range(30)]
    batch_id = store_batch(pipeline_settings, cards)
    start_service("worker")
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 30}
    assert_each_sent_once(control, cards)
    batch = batch_state(pipeline_settings, batch_id)
    assert batch.state == "done" and batch.finished_at is not None
    rows = rows_by_card(pipeline_settings, batch_id)
    assert all(row.pin_enc is None and row.asset_id and row.transfer_id for row in rows.values())
    assert {row.transfer_status for row in rows.values()} <= {"created", "sent", "claimed"}


MAGIC_OUTCOMES = [
    ("9901", "UNKNOWN_ASSET", False, False),
    ("9902", "DUPLICATE_ASSET", False, False),
    ("9903", "UNSUPPORTED_ASSET_TYPE", False, False),
    ("9904", "DENIED_BY_ASSET_PROVIDER", False, False),
    ("9905", "EXPIRED_BY_ASSET_PROVIDER", False, False),
    ("9906", "INSUFFICIENT_WALLET_BALANCE", True, True),
    ("9907", "QUOTA_EXCEEDED", True, True),
]


def test_each_centrapay_error_lands_in_its_row_outcome(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    cards = [card_number(1, prefix=prefix) for prefix, *_ in MAGIC_OUTCOMES]
    batch_id = store_batch(pipeline_settings, [*cards, card_number(99)])
    start_service("worker")
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"failed": 7, "sent": 1}
    rows = rows_by_card(pipeline_settings, batch_id)
    for (_, code, retryable, loaded), card in zip(MAGIC_OUTCOMES, cards, strict=True):
        row = rows[card]
        assert (row.error_code, row.retryable) == (code, retryable), card
        assert (row.asset_id is not None) == loaded, card
    assert batch_state(pipeline_settings, batch_id).state == "done"


def test_retry_on_demand_succeeds_once_the_fault_is_cleared_without_a_second_load(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    cards = [card_number(1, prefix="9906"), card_number(2, prefix="9907")]
    batch_id = store_batch(pipeline_settings, cards)
    start_service("worker")
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"failed": 2}
    topped_up = control.patch(
        f"/accounts/{SANDBOX_ACCOUNT}",
        json={"walletBalance": "100000000", "spendQuotaLimit": "100000000"},
    )
    assert topped_up.status_code == 200, topped_up.text
    with session_scope(pipeline_settings.database_url) as session:
        result = retry(
            session, batch_id=batch_id, vault=vault_from_settings(pipeline_settings), now=utcnow()
        )
    assert len(result.retried) == 2
    assert rows_by_state(pipeline_settings, batch_id) == {"loaded": 2}
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 2}
    counts = card_counts(control, cards)
    assert all(c["loads"] == 1 and c["transfers"] == 1 for c in counts.values()), counts


def test_a_task_delivered_twice_still_sends_each_card_once(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    cards = [card_number(i) for i in range(20)]
    batch_id = store_batch(pipeline_settings, cards)
    start_service("worker")
    rows = [(row.id, batch_id) for row in rows_by_card(pipeline_settings, batch_id).values()]
    queue = CeleryRowQueue(make_celery(pipeline_settings))
    queue.submit(rows)
    queue.submit(rows)
    queue.submit(rows[:5])
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 20}
    assert_each_sent_once(control, cards)


def test_applied_then_lost_answers_end_with_each_card_sent_once(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    control.patch(
        "/config",
        json={"faultTimeout": 0.15, "faultDrop": 0.1, "fault5xx": 0.1, "timeoutHoldSeconds": 3},
    )
    cards = [card_number(i) for i in range(40)]
    batch_id = store_batch(pipeline_settings, cards)
    start_service("worker")
    start_service("beat")
    enqueue(pipeline_settings, batch_id)
    counts = wait_until_settled(pipeline_settings, batch_id, timeout=120)
    assert counts == {"sent": 40}, counts
    assert_each_sent_once(control, cards)
    faults = [r["fault"] for r in control.get("/ledger/requests").json()["items"] if r["fault"]]
    assert {"timeout", "drop", "5xx"} <= set(faults)


def test_a_worker_killed_mid_batch_loses_no_row_and_sends_none_twice(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    control.patch("/config", json={"latencyMs": 150})
    cards = [card_number(i) for i in range(40)]
    batch_id = store_batch(pipeline_settings, cards)
    doomed = start_service("worker")
    enqueue(pipeline_settings, batch_id)
    wait_for_sent(pipeline_settings, batch_id, at_least=5)
    doomed.kill()
    in_flight = rows_by_state(pipeline_settings, batch_id)
    assert in_flight.get("sent", 0) < 40, "the kill came too late to prove anything"
    start_service("worker")
    start_service("beat")
    assert wait_until_settled(pipeline_settings, batch_id, timeout=90) == {"sent": 40}
    assert_each_sent_once(control, cards)


def test_flushing_redis_mid_batch_loses_no_row(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    control.patch("/config", json={"latencyMs": 100})
    cards = [card_number(i) for i in range(60)]
    batch_id = store_batch(pipeline_settings, cards)
    start_service("worker")
    enqueue(pipeline_settings, batch_id)
    wait_for_sent(pipeline_settings, batch_id, at_least=5)
    redis.Redis.from_url(pipeline_settings.redis_url).flushdb()
    assert rows_by_state(pipeline_settings, batch_id).get("sent", 0) < 60
    start_service("beat")
    assert wait_until_settled(pipeline_settings, batch_id, timeout=90) == {"sent": 60}
    assert_each_sent_once(control, cards)


def test_a_wrong_api_key_pauses_the_batch_and_sends_nothing(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    cards = [card_number(i) for i in range(5)]
    batch_id = store_batch(pipeline_settings, cards)
    start_service("worker", CENTRAPAY_API_KEY="wrong-key")
    enqueue(pipeline_settings, batch_id)
    deadline = time.monotonic() + 20
    while batch_state(pipeline_settings, batch_id).state != "paused":
        assert time.monotonic() < deadline, "the batch did not pause"
        time.sleep(0.1)
    assert "401" in (batch_state(pipeline_settings, batch_id).pause_reason or "")
    while rows_by_state(pipeline_settings, batch_id) != {"pending": 5}:
        assert time.monotonic() < deadline, "rows in flight were not released"
        time.sleep(0.1)
    assert all(c["loads"] == 0 for c in card_counts(control, cards).values())


def test_a_worker_stopped_with_sigterm_releases_its_rows_at_once(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    control.patch("/config", json={"latencyMs": 200})
    cards = [card_number(i) for i in range(40)]
    batch_id = store_batch(pipeline_settings, cards)
    stopping = start_service("worker")
    enqueue(pipeline_settings, batch_id)
    wait_for_sent(pipeline_settings, batch_id, at_least=3)
    stopping.stop()
    after_stop = rows_by_state(pipeline_settings, batch_id)
    assert after_stop.get("sent", 0) < 40, "the stop came too late to prove anything"
    assert not after_stop.get("loading") and not after_stop.get("transferring"), after_stop
    start_service("worker")
    assert wait_until_settled(pipeline_settings, batch_id, timeout=90) == {"sent": 40}
    assert_each_sent_once(control, cards)


def test_a_worker_serves_its_centrapay_call_counters_on_its_metrics_port(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    port = free_port()
    cards = [card_number(i) for i in range(5)]
    batch_id = store_batch(pipeline_settings, cards)
    start_service("worker", WORKER_METRICS_PORT=str(port))
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 5}
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    calls = [
        line
        for line in scraped.splitlines()
        if line.startswith("distributor_centrapay_calls_total{") and 'status="200"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in calls) == 5, "one call per card"
    assert "distributor_bucket_wait_seconds_count 5.0" in scraped
