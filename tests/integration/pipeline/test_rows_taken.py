"""A message's rows taken together: one transaction claims their load steps, each claim is
used when its row's turn comes, and the rows whose turn does not come are handed back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from centrapay_sandbox.server import SandboxHandle
from distributor.config import Settings
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext, build_context
from distributor.pipeline.steps import advance_row, rows_taken
from distributor.ratelimit.local import LocalTokenBucket
from tests.integration.pipeline.recovery_helpers import api_calls, read_row, stored_row

LOAD = "POST /api/external-assets"
CARDS = ["23409800001", "23409800002", "23409800003"]
LEASE_SECONDS = 1.2


@pytest.fixture
def ctx(settings: Settings, sandbox: SandboxHandle) -> Iterator[PipelineContext]:
    fast = settings.model_copy(update={"lease_seconds": LEASE_SECONDS})
    context = build_context(
        fast, bucket=LocalTokenBucket(rate_per_second=1000, burst=100), base_url=sandbox.base_url
    )
    yield context
    context.close()


def test_rows_taken_together_and_not_started_are_handed_back_with_no_attempt_counted(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    first, *others = [stored_row(settings, card) for card in CARDS]
    with rows_taken(ctx, [first, *others]) as taken:
        assert set(taken) == {first, *others}
        assert all(read_row(settings, row_id).state == "loading" for row_id in others)
        assert advance_row(ctx, first, loading=taken.pop(first)) is None
    assert read_row(settings, first).state == "sent"
    for row_id in others:
        row = read_row(settings, row_id)
        assert (row.state, row.load_attempts, row.lease_until, row.ambiguous) == (
            "pending",
            0,
            None,
            False,
        )
    assert api_calls(control) == [LOAD]


def test_a_row_taken_with_others_keeps_its_lease_while_it_waits_its_turn(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    waiting = [stored_row(settings, card) for card in CARDS[:2]]
    with rows_taken(ctx, waiting) as taken:
        time.sleep(LEASE_SECONDS * 2)
        lease_until = read_row(settings, waiting[1]).lease_until
        assert lease_until is not None and lease_until > utcnow(), "not renewed"
        for row_id in waiting:
            assert advance_row(ctx, row_id, loading=taken.pop(row_id)) is None
    assert [read_row(settings, row_id).state for row_id in waiting] == ["sent", "sent"]
    assert api_calls(control) == [LOAD, LOAD]


def test_a_row_another_message_holds_is_not_taken_again(
    settings: Settings, ctx: PipelineContext
) -> None:
    row_id = stored_row(settings, CARDS[0])
    with rows_taken(ctx, [row_id]) as held, rows_taken(ctx, [row_id]) as again:
        assert (set(held), again) == ({row_id}, {})
