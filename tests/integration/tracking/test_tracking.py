"""Following transfers after ``sent``: what is due for a poll, and what a look-up records."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from distributor.config import Settings
from distributor.db import session_scope
from distributor.errors import TokenWaitTooLong
from distributor.pipeline import tracking
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.transfer_status import due_for_poll, record_transfer_status
from distributor.ratelimit.local import LocalTokenBucket
from tests.factories import make_batch
from tests.integration.tracking.conftest import MakeContext
from tests.integration.tracking.tracking_helpers import (
    NEVER_CLAIMS,
    read_row,
    send_card,
    set_status,
    stored_row,
    summary,
)

CLAIMS = "+64221231234"
INTERVAL = timedelta(minutes=5)
CLAIM_DELAY_SECONDS = 61
"""Simulated seconds after which the sandbox has claimed a transfer (to a claiming alias)."""


def card(index: int) -> str:
    """An 11-digit card number the sandbox loads."""
    return f"2340{index:07d}"


def test_a_refresh_records_the_status_centrapay_shows_and_when_it_looked(
    tracking_settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    row_id = send_card(ctx, tracking_settings, card=card(1), recipient=CLAIMS)
    control.post("/clock/advance", json={"seconds": CLAIM_DELAY_SECONDS}).raise_for_status()
    before = utcnow()
    assert tracking.refresh_transfer(ctx, row_id) == "claimed"
    row = read_row(tracking_settings, row_id)
    assert row.transfer_status == "claimed"
    assert row.transfer_checked_at is not None and row.transfer_checked_at >= before


def test_a_refresh_asks_centrapay_for_the_transfer_with_a_token_from_the_bucket(
    tracking_settings: Settings,
    ctx: PipelineContext,
    make_context: MakeContext,
    control: httpx.Client,
) -> None:
    row_id = send_card(ctx, tracking_settings, card=card(1), recipient=CLAIMS)
    one_token = make_context(
        LocalTokenBucket(rate_per_second=0.001, burst=1), token_wait_max_seconds=0
    )
    seen = len(control.get("/ledger/requests").json()["items"])
    tracking.refresh_transfer(one_token, row_id)
    with pytest.raises(TokenWaitTooLong):
        tracking.refresh_transfer(one_token, row_id)
    asked = control.get("/ledger/requests").json()["items"][seen:]
    transfer_id = read_row(tracking_settings, row_id).transfer_id
    assert [(r["method"], r["path"]) for r in asked] == [
        ("GET", f"/api/asset-transfers/{transfer_id}")
    ]


def test_a_refresh_never_moves_a_final_status_backwards(
    tracking_settings: Settings, ctx: PipelineContext
) -> None:
    row_id = send_card(ctx, tracking_settings, card=card(1), recipient=NEVER_CLAIMS)
    set_status(tracking_settings, row_id, "claimed")
    assert tracking.refresh_transfer(ctx, row_id) == "claimed"
    assert read_row(tracking_settings, row_id).transfer_status == "claimed"


STATUS_MOVES = [
    (None, "sent", "sent"),
    ("created", "sent", "sent"),
    ("sent", "created", "sent"),
    ("sent", "expired", "expired"),
    ("expired", "returned", "returned"),
    ("sent", "claimed", "claimed"),
    ("created", "claimed", "claimed"),
    ("claimed", "sent", "claimed"),
    ("claimed", "returned", "claimed"),
    ("returned", "claimed", "returned"),
    ("returned", "expired", "returned"),
    ("sent", "cancelled", "cancelled"),
    ("cancelled", "sent", "cancelled"),
    ("sent", "not-a-status", "sent"),
    ("sent", None, "sent"),
]


@pytest.mark.parametrize(("stored", "answered", "kept"), STATUS_MOVES)
def test_a_recorded_status_only_ever_moves_forward(
    settings: Settings, stored: str | None, answered: str | None, kept: str
) -> None:
    row_id = stored_row(settings, card=card(1), transfer_id="T1", status=stored)
    with session_scope(settings.database_url) as session:
        recorded = record_transfer_status(
            session, row_id=row_id, transfer_id="T1", status=answered, now=utcnow()
        )
    assert recorded == kept
    row = read_row(settings, row_id)
    assert row.transfer_status == kept
    assert row.transfer_checked_at is not None


def test_only_a_sent_row_holding_that_transfer_gets_a_status(settings: Settings) -> None:
    loaded = stored_row(settings, card=card(1), transfer_id="T1", state="loaded", sent_ago=None)
    sent = stored_row(settings, card=card(2), transfer_id="T2", status="sent")
    with session_scope(settings.database_url) as session:
        for row_id in (loaded, sent):
            recorded = record_transfer_status(
                session, row_id=row_id, transfer_id="T1", status="claimed", now=utcnow()
            )
            assert recorded is None
    assert read_row(settings, loaded).transfer_status is None
    assert read_row(settings, sent).transfer_status == "sent"


def test_a_row_that_is_not_sent_is_not_looked_up(
    tracking_settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    row_id = stored_row(
        tracking_settings, card=card(1), transfer_id="T1", state="loaded", sent_ago=None
    )
    assert tracking.refresh_transfer(ctx, row_id) is None
    assert control.get("/ledger/requests").json()["items"] == []


def test_a_transfer_centrapay_will_not_show_keeps_its_status_and_counts_as_looked_at(
    tracking_settings: Settings, ctx: PipelineContext
) -> None:
    row_id = stored_row(
        tracking_settings, card=card(1), transfer_id="NoSuchTransfer1", status="sent"
    )
    assert tracking.refresh_transfer(ctx, row_id) == "sent"
    assert read_row(tracking_settings, row_id).transfer_checked_at is not None


MINUTE = timedelta(minutes=1)
DUE_RULES = [
    pytest.param("sent", "created", 10 * MINUTE, None, True, id="sent-long-ago-never-looked-at"),
    pytest.param("sent", "sent", 10 * MINUTE, 6 * MINUTE, True, id="looked-at-long-ago"),
    pytest.param("sent", "expired", 10 * MINUTE, 6 * MINUTE, True, id="expired-not-yet-returned"),
    pytest.param("sent", None, None, None, True, id="sent-with-nothing-known"),
    pytest.param("sent", "created", MINUTE, None, False, id="just-sent"),
    pytest.param("sent", "sent", 10 * MINUTE, MINUTE, False, id="just-looked-at"),
    pytest.param("sent", "claimed", 10 * MINUTE, 6 * MINUTE, False, id="claimed"),
    pytest.param("sent", "returned", 10 * MINUTE, 6 * MINUTE, False, id="returned"),
    pytest.param("failed", None, None, None, False, id="failed"),
    pytest.param("loaded", None, None, None, False, id="loaded"),
]


@pytest.mark.parametrize(("state", "status", "sent_ago", "checked_ago", "due"), DUE_RULES)
def test_which_rows_are_due_for_a_poll(
    settings: Settings,
    state: str,
    status: str | None,
    sent_ago: timedelta | None,
    checked_ago: timedelta | None,
    due: bool,
) -> None:
    row_id = stored_row(
        settings,
        card=card(1),
        transfer_id="T1" if state == "sent" else None,
        status=status,
        state=state,
        sent_ago=sent_ago,
        checked_ago=checked_ago,
    )
    with session_scope(settings.database_url) as session:
        found = due_for_poll(session, now=utcnow(), interval=INTERVAL, limit=10)
    assert (row_id in found) == due


def test_rows_due_for_a_poll_come_oldest_first_and_no_more_than_the_limit(
    settings: Settings,
) -> None:
    hour = timedelta(hours=1)
    oldest = stored_row(settings, card=card(1), status="sent", sent_ago=2 * hour)
    older = stored_row(settings, card=card(2), status="sent", sent_ago=hour, checked_ago=hour / 2)
    stored_row(settings, card=card(3), status="sent", sent_ago=hour, checked_ago=10 * MINUTE)
    with session_scope(settings.database_url) as session:
        due = due_for_poll(session, now=utcnow(), interval=INTERVAL, limit=2)
    assert due == [oldest, older]


def test_a_poll_run_refreshes_due_rows_and_stops_when_the_bucket_has_no_token_for_it(
    tracking_settings: Settings,
    ctx: PipelineContext,
    make_context: MakeContext,
    control: httpx.Client,
) -> None:
    rows = [send_card(ctx, tracking_settings, card=card(i), recipient=CLAIMS) for i in range(3)]
    control.post("/clock/advance", json={"seconds": CLAIM_DELAY_SECONDS}).raise_for_status()
    busy = make_context(LocalTokenBucket(rate_per_second=0.001, burst=2), token_wait_max_seconds=0)
    assert tracking.poll_due(busy, interval_seconds=INTERVAL.total_seconds(), limit=10) == 2
    statuses = sorted(str(read_row(tracking_settings, row_id).transfer_status) for row_id in rows)
    assert statuses == ["claimed", "claimed", "created"]


def test_a_poll_run_looks_at_no_more_rows_than_its_limit(
    tracking_settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    for i in range(3):
        send_card(ctx, tracking_settings, card=card(i), recipient=CLAIMS)
    control.post("/clock/advance", json={"seconds": CLAIM_DELAY_SECONDS}).raise_for_status()
    assert tracking.poll_due(ctx, interval_seconds=INTERVAL.total_seconds(), limit=2) == 2
    assert tracking.poll_due(ctx, interval_seconds=INTERVAL.total_seconds(), limit=2) == 1
    assert tracking.poll_due(ctx, interval_seconds=INTERVAL.total_seconds(), limit=2) == 0


def test_polling_takes_at_most_a_tenth_of_the_tokens_of_a_poll_period() -> None:
    # 10 tokens a second, a run every 300 / 4 = 75 seconds: 750 tokens, 75 of them for polls.
    assert tracking.poll_limit(rate_per_second=10.0, interval_seconds=300.0) == 75
    assert tracking.poll_limit(rate_per_second=0.01, interval_seconds=1.0) == 1


def test_a_batch_summary_counts_its_sent_rows_by_transfer_status(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        batch_id = make_batch(session).id
    statuses = ["claimed", "claimed", "returned", "sent"]
    for i, status in enumerate(statuses):
        stored_row(settings, card=card(i), status=status, batch_id=batch_id)
    stored_row(settings, card=card(8), state="failed", sent_ago=None, batch_id=batch_id)
    stored_row(settings, card=card(9), status="claimed")
    assert summary(settings, batch_id) == {
        "created": 0,
        "sent": 1,
        "claimed": 2,
        "expired": 0,
        "returned": 1,
        "cancelled": 0,
    }
