"""Centrapay's webhook over real HTTP: a hint schedules one look-up and is never believed;
and a batch shows its sent rows by transfer status."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from distributor.api.app import create_app
from distributor.api.routes.webhooks import REFRESH_DEBOUNCE_SECONDS, WEBHOOK_MAX_BYTES
from distributor.broker import REFRESH_TASK
from distributor.config import Settings
from distributor.db import session_scope
from tests.conftest import TEST_API_TOKEN
from tests.factories import make_batch
from tests.integration.tracking.tracking_helpers import queued_tasks, read_row, stored_row
from tests.serving import serve_in_thread

WEBHOOK = "/webhooks/centrapay/asset-transfers"
TRANSFER_ID = "M7Kn2stAxNa6ri7h"
CARD = "23403321042"


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    """The API over HTTP, with no token: Centrapay has none to send."""
    with (
        serve_in_thread(create_app(settings, dispatch=lambda _batch_id: None)) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


def test_a_hint_schedules_one_look_up_of_the_row_and_changes_nothing_itself(
    settings: Settings, api: httpx.Client
) -> None:
    row_id = stored_row(settings, card=CARD, transfer_id=TRANSFER_ID, status="sent")
    batch_id = read_row(settings, row_id).batch_id
    answer = api.post(WEBHOOK, json={"id": TRANSFER_ID, "status": "claimed"})
    assert answer.status_code == 202, answer.text
    assert queued_tasks(settings.redis_url) == [
        (REFRESH_TASK, {"row_id": row_id, "batch_id": batch_id})
    ]
    assert read_row(settings, row_id).transfer_status == "sent"


def test_hints_for_one_row_within_a_second_are_folded_into_one_look_up(
    settings: Settings, api: httpx.Client
) -> None:
    stored_row(settings, card=CARD, transfer_id=TRANSFER_ID, status="sent")
    for status in ("sent", "claimed", "claimed", "returned"):
        assert api.post(WEBHOOK, json={"id": TRANSFER_ID, "status": status}).status_code == 202
    assert len(queued_tasks(settings.redis_url)) == 1
    time.sleep(REFRESH_DEBOUNCE_SECONDS + 0.1)
    assert api.post(WEBHOOK, json={"id": TRANSFER_ID}).status_code == 202
    assert len(queued_tasks(settings.redis_url)) == 2


def test_an_unknown_transfer_gets_the_same_answer_and_nothing_is_scheduled(
    settings: Settings, api: httpx.Client
) -> None:
    stored_row(settings, card=CARD, transfer_id=TRANSFER_ID, status="sent")
    known = api.post(WEBHOOK, json={"id": TRANSFER_ID})
    queued = queued_tasks(settings.redis_url)
    unknown = api.post(WEBHOOK, json={"id": "NotOurTransfer01", "status": "claimed"})
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert queued_tasks(settings.redis_url) == queued


@pytest.mark.parametrize("status", ["claimed", "returned"])
def test_a_transfer_already_final_is_not_looked_up_again(
    settings: Settings, api: httpx.Client, status: str
) -> None:
    stored_row(settings, card=CARD, transfer_id=TRANSFER_ID, status=status)
    assert api.post(WEBHOOK, json={"id": TRANSFER_ID}).status_code == 202
    assert queued_tasks(settings.redis_url) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'"M7Kn2stAxNa6ri7h"',
        b'{"status": "claimed"}',
        b'{"id": 12}',
        b'{"id": ""}',
        b'{"id": "' + b"x" * 65 + b'"}',
        b'{"id": "M7Kn2stAxNa6ri7h", "pad": "' + b"x" * WEBHOOK_MAX_BYTES + b'"}',
    ],
    ids=[
        "not-json",
        "a-list",
        "a-string",
        "no-id",
        "id-not-a-string",
        "empty-id",
        "long-id",
        "huge",
    ],
)
def test_a_malformed_hint_is_refused_with_400(
    settings: Settings, api: httpx.Client, body: bytes
) -> None:
    stored_row(settings, card=CARD, transfer_id=TRANSFER_ID, status="sent")
    answer = api.post(WEBHOOK, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert queued_tasks(settings.redis_url) == []


def test_a_batch_shows_its_sent_rows_by_transfer_status(
    settings: Settings, api: httpx.Client
) -> None:
    with session_scope(settings.database_url) as session:
        batch_id = make_batch(session).id
    for index, status in enumerate(["claimed", "returned", "sent"]):
        stored_row(settings, card=f"2340000000{index}", status=status, batch_id=batch_id)
    shown = api.get(f"/batches/{batch_id}", headers={"Authorization": f"Bearer {TEST_API_TOKEN}"})
    assert shown.status_code == 200, shown.text
    assert shown.json()["transfers"] == {
        "created": 0,
        "sent": 1,
        "claimed": 1,
        "expired": 0,
        "returned": 1,
        "cancelled": 0,
    }
