"""After ``sent``, rows follow their transfers to claimed or returned: by beat's poll, or by
Centrapay's webhook, which is only ever a hint to look again."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from sqlalchemy import select

from centrapay_sandbox.lifecycle import (
    EXPIRED_AFTER_SECONDS,
    RETURNED_AFTER_EXPIRY_SECONDS,
)
from distributor.api.app import create_app
from distributor.api.routes.webhooks import REFRESH_DEBOUNCE_SECONDS
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Row
from tests.acceptance.conftest import card_number, enqueue, wait_until_settled
from tests.factories import store_running_batch
from tests.integration.tracking.tracking_helpers import (
    NEVER_CLAIMS,
    checked_at,
    read_row,
    summary,
)
from tests.processes import ServiceProcess
from tests.serving import serve_in_thread

StartService = Callable[..., ServiceProcess]

WEBHOOK = "/webhooks/centrapay/asset-transfers"
FAST_CLOCK = 60.0
"""Simulated seconds per real second: a transfer is claimed a real second after it is made."""
POLL_INTERVAL_SECONDS = "1"
TWO_WEEKS_LATER = EXPIRED_AFTER_SECONDS + RETURNED_AFTER_EXPIRY_SECONDS + 60
TRACK_TIMEOUT_SECONDS = 30.0


def _batch(settings: Settings, claimers: int) -> int:
    """A running batch: ``claimers`` recipients who claim, and one who never does."""
    cards = [(card_number(i), "1234", f"+6422100{i:04d}") for i in range(claimers)]
    return store_running_batch(settings, [*cards, (card_number(claimers), "1234", NEVER_CLAIMS)])


def _never_claimer(settings: Settings, batch_id: int) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalars(
            select(Row.id).where(Row.batch_id == batch_id, Row.recipient == NEVER_CLAIMS)
        ).one()


def _wait_for_summary(settings: Settings, batch_id: int, **expected: int) -> None:
    """Poll until the batch's sent rows are in exactly these transfer statuses."""
    deadline = time.monotonic() + TRACK_TIMEOUT_SECONDS
    while True:
        found = {status: n for status, n in summary(settings, batch_id).items() if n}
        if found == expected:
            return
        assert time.monotonic() < deadline, f"transfer statuses {found}, not {expected}"
        time.sleep(0.1)


def test_polling_follows_sent_rows_to_claimed_and_an_unclaimed_card_to_returned(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    control.patch("/config", json={"timeScale": FAST_CLOCK}).raise_for_status()
    batch_id = _batch(pipeline_settings, claimers=4)
    start_service("worker", TRANSFER_POLL_INTERVAL_SECONDS=POLL_INTERVAL_SECONDS)
    start_service("beat", TRANSFER_POLL_INTERVAL_SECONDS=POLL_INTERVAL_SECONDS)
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 5}
    _wait_for_summary(pipeline_settings, batch_id, claimed=4, sent=1)
    control.post("/clock/advance", json={"seconds": TWO_WEEKS_LATER}).raise_for_status()
    _wait_for_summary(pipeline_settings, batch_id, claimed=4, returned=1)
    looked_up = [r for r in control.get("/ledger/requests").json()["items"] if r["method"] == "GET"]
    assert looked_up and all(r["path"].startswith("/api/asset-transfers/") for r in looked_up)


def test_webhooks_move_rows_on_but_a_forged_one_cannot_claim_a_transfer(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    control.patch("/config", json={"timeScale": FAST_CLOCK}).raise_for_status()
    app = create_app(pipeline_settings, dispatch=lambda _batch_id: None)
    with serve_in_thread(app) as api_url, httpx.Client(base_url=api_url) as api:
        batch_id = _batch(pipeline_settings, claimers=3)
        start_service("worker", CENTRAPAY_NOTIFY_URL=api_url + WEBHOOK)
        enqueue(pipeline_settings, batch_id)
        assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 4}
        _wait_for_summary(pipeline_settings, batch_id, claimed=3, sent=1)

        row_id = _never_claimer(pipeline_settings, batch_id)
        time.sleep(REFRESH_DEBOUNCE_SECONDS + 0.2)  # no look-up of it is pending any more
        before = checked_at(pipeline_settings, row_id)
        transfer_id = read_row(pipeline_settings, row_id).transfer_id
        forged = api.post(WEBHOOK, json={"id": transfer_id, "status": "claimed"})
        assert forged.status_code == 202, forged.text
        deadline = time.monotonic() + TRACK_TIMEOUT_SECONDS
        while checked_at(pipeline_settings, row_id) == before:
            assert time.monotonic() < deadline, "the hint did not lead to a look-up"
            time.sleep(0.1)
        assert read_row(pipeline_settings, row_id).transfer_status == "sent"

        control.post("/clock/advance", json={"seconds": TWO_WEEKS_LATER}).raise_for_status()
        _wait_for_summary(pipeline_settings, batch_id, claimed=3, returned=1)
