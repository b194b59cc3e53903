"""One call per card through a real worker and beat; every lost answer ends with the card
sent once and the row holding the sandbox's asset and transfer ids."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import httpx
import pytest

from distributor.config import Settings
from distributor.models import Row
from tests.acceptance.conftest import (
    assert_each_sent_once,
    card_number,
    enqueue,
    rows_by_card,
    rows_by_state,
    store_batch,
    wait_until_settled,
)
from tests.conftest import SANDBOX_KEY
from tests.integration.pipeline.recovery_helpers import (
    api_calls,
    calls_by_endpoint,
    plan_fault,
    sandbox_transfer,
)
from tests.processes import ServiceProcess

StartService = Callable[..., ServiceProcess]
IDS_TIMEOUT_SECONDS = 30.0


def _wait_for_transfer_ids(settings: Settings, batch_id: int) -> dict[str, Row]:
    deadline = time.monotonic() + IDS_TIMEOUT_SECONDS
    while True:
        rows = rows_by_card(settings, batch_id)
        if all(row.transfer_id for row in rows.values()):
            return rows
        assert time.monotonic() < deadline, "transfer ids were not synced"
        time.sleep(0.2)


def _assert_ids_are_the_sandboxs(base_url: str, rows: dict[str, Row]) -> None:
    for card, row in rows.items():
        assert row.asset_id, card
        transfer = sandbox_transfer(base_url, SANDBOX_KEY, row.transfer_id or "")
        assert transfer["assetId"] == row.asset_id, card


def test_a_batch_goes_out_in_one_call_per_card(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    cards = [card_number(i) for i in range(20)]
    batch_id = store_batch(pipeline_settings, cards)
    start_service("worker")
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 20}
    assert calls_by_endpoint(control) == {"POST /api/external-assets": 20}
    assert_each_sent_once(control, cards)
    rows = rows_by_card(pipeline_settings, batch_id)
    _assert_ids_are_the_sandboxs(pipeline_settings.centrapay_base_url or "", rows)


@pytest.mark.parametrize(
    ("single_call", "path", "fault"),
    [
        pytest.param(True, "/api/external-assets", "timeout", id="single-call-answer-lost"),
        pytest.param(True, "/api/external-assets", "drop", id="single-call-connection-dropped"),
        pytest.param(False, "/api/external-assets", "timeout", id="load-answer-lost"),
        pytest.param(False, "/api/asset-transfers", "timeout", id="transfer-answer-lost"),
        pytest.param(False, "/api/asset-transfers", "5xx", id="transfer-5xx"),
    ],
)
def test_each_lost_answer_ends_with_the_card_sent_once_and_the_sandboxs_ids(
    pipeline_settings: Settings,
    control: httpx.Client,
    start_service: StartService,
    single_call: bool,
    path: str,
    fault: str,
) -> None:
    cards = [card_number(i) for i in range(6)]
    batch_id = store_batch(pipeline_settings, cards)
    plan_fault(control, "POST", path, fault, count=3)
    env = {
        "CENTRAPAY_SINGLE_CALL": str(single_call).lower(),
        "TRANSFER_ID_SYNC_INTERVAL_SECONDS": "1",
    }
    start_service("worker", **env)
    start_service("beat", **env)
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id, timeout=90) == {"sent": 6}
    rows = _wait_for_transfer_ids(pipeline_settings, batch_id)
    assert_each_sent_once(control, cards)
    _assert_ids_are_the_sandboxs(pipeline_settings.centrapay_base_url or "", rows)
    assert not any(row.ambiguous for row in rows.values())


def test_a_worker_frozen_past_its_lease_makes_no_further_call_for_the_row_when_it_wakes(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    control.patch("/config", json={"latencyMs": 1500})
    cards = [card_number(1, prefix="9902")]  # DUPLICATE_ASSET: its answer asks for a lookup
    batch_id = store_batch(pipeline_settings, cards)
    patient = {"CENTRAPAY_TIMEOUT_SECONDS": "10"}
    frozen = start_service("worker", **patient)
    enqueue(pipeline_settings, batch_id)
    deadline = time.monotonic() + 20
    while rows_by_state(pipeline_settings, batch_id) != {"loading": 1}:
        assert time.monotonic() < deadline, "the row was not taken"
        time.sleep(0.02)
    time.sleep(0.3)  # its load is at the sandbox now, answered in 1.5 s
    assert frozen.process is not None
    os.killpg(frozen.process.pid, signal.SIGSTOP)
    try:
        time.sleep(pipeline_settings.lease_seconds + 1)
        start_service("worker", **patient)
        start_service("beat", **patient)
        assert wait_until_settled(pipeline_settings, batch_id, timeout=60) == {"failed": 1}
        before_waking = api_calls(control)
    finally:
        os.killpg(frozen.process.pid, signal.SIGCONT)
    time.sleep(3)
    assert api_calls(control) == before_waking, "the woken worker called for a row not its own"
    assert "no further call" in frozen.log_text()
