"""One call per card, and O(1) calls to find out what a lost answer did, on a real sandbox.

Each case scripts the sandbox's next fault for one endpoint, runs the row with
``advance_row`` (what every worker runs) and counts the requests the sandbox received.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import update

from centrapay_sandbox.server import SandboxHandle
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Row
from distributor.pipeline import transitions
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext, build_context
from distributor.pipeline.retry import retry
from distributor.pipeline.single_call import TWO_STEP_NOTICE
from distributor.pipeline.steps import LOOK_ONLY_ATTEMPTS, advance_row
from distributor.pipeline.transfer_ids import SYNC_MAX_PAGES, sync_transfer_ids
from distributor.ratelimit.local import LocalTokenBucket
from distributor.vault import vault_from_settings
from tests.conftest import SANDBOX_KEY
from tests.integration.pipeline.recovery_helpers import (
    ORDER,
    api_calls,
    calls_by_endpoint,
    card_ledger,
    claimed_by_recipient,
    load_out_of_band,
    plan_fault,
    read_batch,
    read_row,
    run_to_rest,
    sandbox_transfer,
    set_row,
    stored_row,
)

LOAD = "POST /api/external-assets"
FIND_CARD = "GET /api/accounts/{id}/assets"
GET_ASSET = "GET /api/assets/{id}"
TRANSFER = "POST /api/asset-transfers"
LIST_SENT = "GET /api/asset-transfers"
CARD = "23409900001"
SYNC_RUNS_MAX = 5


def _context(settings: Settings, sandbox: SandboxHandle, **changes: object) -> PipelineContext:
    fast = settings.model_copy(
        update={
            "centrapay_timeout_seconds": 0.3,
            "retry_backoff_seconds": 0.01,
            "retry_backoff_max_seconds": 0.05,
            "lease_seconds": 3.0,
            **changes,
        }
    )
    return build_context(
        fast, bucket=LocalTokenBucket(rate_per_second=1000, burst=100), base_url=sandbox.base_url
    )


@pytest.fixture
def ctx(settings: Settings, sandbox: SandboxHandle) -> Iterator[PipelineContext]:
    context = _context(settings, sandbox)
    yield context
    context.close()


@pytest.fixture
def two_step(settings: Settings, sandbox: SandboxHandle) -> Iterator[PipelineContext]:
    context = _context(settings, sandbox, centrapay_single_call=False)
    yield context
    context.close()


@pytest.fixture(autouse=True)
def _short_timeouts(control: httpx.Client) -> None:
    control.patch("/config", json={"timeoutHoldSeconds": 0.6})


@pytest.fixture(params=["newest", "oldest"])
def list_order(request: pytest.FixtureRequest, control: httpx.Client) -> str:
    order = str(request.param)
    assert control.patch("/config", json={"listOrder": order}).status_code == 200
    return order


def _row_through_fault(
    ctx: PipelineContext,
    settings: Settings,
    control: httpx.Client,
    fault: str,
    *,
    path: str = "/api/external-assets",
    count: int = 1,
) -> int:
    """A row of CARD run to rest, the sandbox's next ``count`` POSTs under ``path`` meeting
    ``fault``; its id."""
    row_id = stored_row(settings, CARD)
    plan_fault(control, "POST", path, fault, count=count)
    run_to_rest(ctx, row_id)
    return row_id


def _assert_sent_once(
    settings: Settings, control: httpx.Client, sandbox: SandboxHandle, row_id: int
) -> None:
    """The row is sent with the sandbox's asset and transfer; one load, one transfer."""
    row = read_row(settings, row_id)
    assert row.state == "sent" and row.asset_id and row.transfer_id, row.state
    assert not row.ambiguous and row.pin_enc is None
    transfer = sandbox_transfer(sandbox.base_url, SANDBOX_KEY, row.transfer_id)
    assert transfer["assetId"] == row.asset_id
    ledger = card_ledger(control, CARD)
    assert (ledger["loads"], ledger["transfers"]) == (1, 1), ledger


def test_a_card_goes_out_in_one_call_with_its_asset_and_transfer_ids(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, sandbox: SandboxHandle
) -> None:
    row_id = stored_row(settings, CARD)
    run_to_rest(ctx, row_id)
    assert api_calls(control) == [LOAD]
    _assert_sent_once(settings, control, sandbox, row_id)
    assert read_batch(settings, read_row(settings, row_id).batch_id).state == "done"


def test_a_lost_single_call_answer_is_found_in_one_lookup_then_its_transfer_id_synced(
    settings: Settings,
    ctx: PipelineContext,
    control: httpx.Client,
    sandbox: SandboxHandle,
    list_order: str,
) -> None:
    row_id = _row_through_fault(ctx, settings, control, "timeout")
    row = read_row(settings, row_id)
    assert (row.state, row.transfer_id, row.transfer_id_pending) == ("sent", None, True)
    assert row.asset_id and row.error_code is None
    assert api_calls(control) == [LOAD, FIND_CARD]

    report = sync_transfer_ids(database_url=settings.database_url, client=ctx.client)
    assert (report.resolved, report.pending) == (1, 0)
    _assert_sent_once(settings, control, sandbox, row_id)
    assert calls_by_endpoint(control)[LIST_SENT] <= 2, list_order
    assert sync_transfer_ids(database_url=settings.database_url, client=ctx.client).pages == 0


def test_a_lost_answer_costs_the_same_calls_on_an_account_with_a_long_history(
    settings: Settings,
    ctx: PipelineContext,
    control: httpx.Client,
    sandbox: SandboxHandle,
    list_order: str,
) -> None:
    made = control.post("/accounts/sandbox-account/history", json={"transfers": 3000})
    assert made.status_code == 200, made.text
    before = len(api_calls(control))
    row_id = _row_through_fault(ctx, settings, control, "drop")
    assert api_calls(control)[before:] == [LOAD, FIND_CARD]
    runs = [sync_transfer_ids(database_url=settings.database_url, client=ctx.client)]
    while runs[-1].pending and len(runs) < SYNC_RUNS_MAX:
        runs.append(sync_transfer_ids(database_url=settings.database_url, client=ctx.client))
    listing = calls_by_endpoint(control)[LIST_SENT]
    if list_order == "newest":
        assert listing == 1
    else:
        # Oldest first: the end of the history is reached once per account, not per row,
        # a bounded number of pages per run; a run may read again one page it has seen
        # (the front, when the order does not show on it).
        assert listing <= 3000 // 100 + 1 + len(runs)
        assert max(run.pages for run in runs) <= SYNC_MAX_PAGES
    _assert_sent_once(settings, control, sandbox, row_id)


@pytest.mark.parametrize("fault", ["5xx", "429"])
def test_a_5xx_or_a_429_on_the_single_call_is_sent_again_without_a_lookup(
    settings: Settings,
    ctx: PipelineContext,
    control: httpx.Client,
    sandbox: SandboxHandle,
    fault: str,
) -> None:
    """A 5xx is sent again after its backoff: a second load of a card in a transfer is
    refused (DUPLICATE_ASSET), and that answer leads to the lookup. A 429 applied nothing."""
    row_id = _row_through_fault(ctx, settings, control, fault)
    assert api_calls(control) == [LOAD, LOAD]
    _assert_sent_once(settings, control, sandbox, row_id)


def test_a_5xx_that_was_applied_after_all_is_found_through_the_resends_refusal(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    applied = load_out_of_band(ctx.client, CARD, transfer=True)
    row_id = stored_row(settings, CARD)
    set_row(settings, row_id, load_attempts=1, error_code="SERVER_ERROR")
    run_to_rest(ctx, row_id)
    row = read_row(settings, row_id)
    assert (row.state, row.asset_id, row.transfer_id_pending) == ("sent", applied.asset.id, True)
    assert api_calls(control)[1:] == [LOAD, FIND_CARD]
    assert card_ledger(control, CARD)["transfers"] == 1


def test_a_card_held_elsewhere_after_an_earlier_5xx_fails_with_its_delivery_unknown(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    row_id = stored_row(settings, "99020000001")  # DUPLICATE_ASSET, not in our account
    set_row(settings, row_id, load_attempts=1, error_code="SERVER_ERROR")
    run_to_rest(ctx, row_id)
    row = read_row(settings, row_id)
    assert (row.state, row.error_code, row.ambiguous) == ("failed", "DUPLICATE_ASSET", True)
    assert api_calls(control) == [LOAD, FIND_CARD]


def test_a_card_held_elsewhere_whose_lookup_failed_once_still_fails_with_its_delivery_unknown(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    # The lookup after the refusal times out: the earlier 5xx must not be forgotten with it.
    row_id = stored_row(settings, "99020000001")  # DUPLICATE_ASSET, not in our account
    set_row(settings, row_id, load_attempts=1, error_code="SERVER_ERROR")
    plan_fault(control, "GET", "/api/accounts/", "timeout")
    run_to_rest(ctx, row_id)
    row = read_row(settings, row_id)
    assert (row.state, row.error_code, row.ambiguous) == ("failed", "DUPLICATE_ASSET", True)
    assert api_calls(control) == [LOAD, FIND_CARD, FIND_CARD, LOAD, FIND_CARD]


def test_a_lost_load_answer_in_two_steps_finds_the_card_and_transfers_it(
    settings: Settings, two_step: PipelineContext, control: httpx.Client, sandbox: SandboxHandle
) -> None:
    row_id = _row_through_fault(two_step, settings, control, "timeout")
    assert api_calls(control) == [LOAD, FIND_CARD, TRANSFER]
    _assert_sent_once(settings, control, sandbox, row_id)


def test_a_lost_transfer_answer_is_found_by_asset_then_its_id_synced(
    settings: Settings,
    two_step: PipelineContext,
    control: httpx.Client,
    sandbox: SandboxHandle,
    list_order: str,
) -> None:
    row_id = _row_through_fault(two_step, settings, control, "timeout", path="/api/asset-transfers")
    assert read_row(settings, row_id).transfer_id_pending
    assert api_calls(control) == [LOAD, TRANSFER, GET_ASSET]
    sync_transfer_ids(database_url=settings.database_url, client=two_step.client)
    _assert_sent_once(settings, control, sandbox, row_id)


def test_a_transfer_refused_as_already_transferred_is_a_late_applied_attempt_not_a_failure(
    settings: Settings, two_step: PipelineContext, control: httpx.Client, sandbox: SandboxHandle
) -> None:
    row_id = stored_row(settings, CARD)
    loaded = load_out_of_band(two_step.client, CARD)
    late = two_step.client.create_transfer(asset_id=loaded.asset.id, order=ORDER)
    set_row(settings, row_id, state="loaded", asset_id=loaded.asset.id)
    run_to_rest(two_step, row_id)
    assert api_calls(control)[2:] == [TRANSFER, GET_ASSET]
    sync_transfer_ids(database_url=settings.database_url, client=two_step.client)
    assert read_row(settings, row_id).transfer_id == late.id
    _assert_sent_once(settings, control, sandbox, row_id)


def test_duplicate_asset_for_a_card_in_a_transfer_of_ours_settles_the_row_as_sent(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, sandbox: SandboxHandle
) -> None:
    earlier = load_out_of_band(ctx.client, CARD, transfer=True)
    row_id = stored_row(settings, CARD)
    run_to_rest(ctx, row_id)
    assert api_calls(control)[1:] == [LOAD, FIND_CARD]
    sync_transfer_ids(database_url=settings.database_url, client=ctx.client)
    assert earlier.transfer is not None
    assert read_row(settings, row_id).transfer_id == earlier.transfer.id
    _assert_sent_once(settings, control, sandbox, row_id)


def test_a_refused_transfer_half_fails_the_row_with_the_card_recorded_as_loaded(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    row_id = stored_row(settings, "99060000001")
    run_to_rest(ctx, row_id)
    row = read_row(settings, row_id)
    assert (row.state, row.error_code, row.retryable) == (
        "failed",
        "INSUFFICIENT_WALLET_BALANCE",
        True,
    )
    assert row.asset_id is not None and not row.ambiguous
    assert api_calls(control) == [LOAD, FIND_CARD]


def test_an_account_without_the_single_call_falls_back_to_two_steps_and_fails_no_row(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, sandbox: SandboxHandle
) -> None:
    assert control.patch("/config", json={"singleCall": False}).status_code == 200
    row_id = stored_row(settings, CARD)
    run_to_rest(ctx, row_id)
    assert api_calls(control) == [LOAD, LOAD, TRANSFER]
    _assert_sent_once(settings, control, sandbox, row_id)
    assert read_batch(settings, read_row(settings, row_id).batch_id).notice == TWO_STEP_NOTICE
    other = _context(settings, sandbox)
    try:
        assert not other.single_call.wanted(), "every process learns it from Postgres"
    finally:
        other.close()


def test_ambiguous_failures_past_the_budget_end_with_the_card_known_not_delivered(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    ctx = _context(settings, sandbox, max_auto_retries=1)
    try:
        row_id = _row_through_fault(ctx, settings, control, "5xx", count=2)
    finally:
        ctx.close()
    row = read_row(settings, row_id)
    assert (row.state, row.error_code, row.ambiguous) == ("failed", "SERVER_ERROR", False)
    assert api_calls(control) == [LOAD, LOAD, FIND_CARD], "the last try looks before failing"
    assert card_ledger(control, CARD)["loads"] == 0


def test_a_look_only_attempt_that_finds_nothing_ends_the_row_known_not_delivered(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    ctx = _context(settings, sandbox, max_auto_retries=1)
    try:
        plan_fault(control, "GET", "/api/accounts/", "5xx", count=2)
        row_id = _row_through_fault(ctx, settings, control, "5xx", count=2)
    finally:
        ctx.close()
    row = read_row(settings, row_id)
    assert (row.state, row.error_code, row.ambiguous) == ("failed", "SERVER_ERROR", False)
    assert "not loaded" in (row.error_detail or "")
    assert api_calls(control) == [LOAD, LOAD, FIND_CARD, FIND_CARD, FIND_CARD], "no third load"
    assert card_ledger(control, CARD)["loads"] == 0


def test_a_lost_answer_whose_lookups_fail_past_the_budget_is_found_by_a_later_look(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    """The soak's row: the load is applied but its answer lost, the lookup made at once
    fails, then the one of the budget's last attempt, then those of all but the last
    look-only attempt. The last finds the card before its recipient claims it: sent."""
    ctx = _context(settings, sandbox, max_auto_retries=1)
    try:
        row_id = stored_row(settings, CARD)
        plan_fault(control, "POST", "/api/external-assets", "timeout")
        plan_fault(control, "GET", "/api/accounts/", "timeout", count=LOOK_ONLY_ATTEMPTS + 1)
        run_to_rest(ctx, row_id)
        row = read_row(settings, row_id)
        assert (row.state, row.transfer_id_pending) == ("sent", True)
        assert api_calls(control) == [LOAD] + [FIND_CARD] * (LOOK_ONLY_ATTEMPTS + 2)
        sync_transfer_ids(database_url=settings.database_url, client=ctx.client)
    finally:
        ctx.close()
    _assert_sent_once(settings, control, sandbox, row_id)


def test_a_lost_transfer_answer_whose_lookups_fail_past_the_budget_is_found_by_a_later_look(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    ctx = _context(settings, sandbox, max_auto_retries=1, centrapay_single_call=False)
    try:
        plan_fault(control, "GET", "/api/assets/", "5xx", count=LOOK_ONLY_ATTEMPTS + 1)
        row_id = _row_through_fault(ctx, settings, control, "timeout", path="/api/asset-transfers")
        assert read_row(settings, row_id).transfer_id_pending
        assert api_calls(control) == [LOAD, TRANSFER] + [GET_ASSET] * (LOOK_ONLY_ATTEMPTS + 2)
        sync_transfer_ids(database_url=settings.database_url, client=ctx.client)
    finally:
        ctx.close()
    _assert_sent_once(settings, control, sandbox, row_id)


def test_a_row_whose_lookups_keep_failing_ends_with_its_delivery_unknown(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    looks = LOOK_ONLY_ATTEMPTS + 2  # at once, on the budget's last attempt, then look-only
    ctx = _context(settings, sandbox, max_auto_retries=1)
    try:
        row_id = stored_row(settings, CARD)
        plan_fault(control, "POST", "/api/external-assets", "timeout")
        plan_fault(control, "GET", "/api/accounts/", "5xx", count=looks)
        run_to_rest(ctx, row_id)
    finally:
        ctx.close()
    row = read_row(settings, row_id)
    assert (row.state, row.error_code, row.ambiguous) == ("failed", "SERVER_ERROR", True)
    assert api_calls(control) == [LOAD] + [FIND_CARD] * looks, "looks only, never loads again"
    assert card_ledger(control, CARD)["transfers"] == 1, "delivered, and the row does not deny it"


def test_a_look_only_attempt_comes_back_after_the_first_backoff_not_the_budgets_last(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    # Backoff 1 s doubling: the budget's last wait would be 4-8 s, the first is 0.5-1 s.
    ctx = _context(
        settings,
        sandbox,
        max_auto_retries=3,
        retry_backoff_seconds=1.0,
        retry_backoff_max_seconds=60.0,
    )
    try:
        row_id = stored_row(settings, CARD)
        set_row(settings, row_id, load_attempts=3, ambiguous=True)
        plan_fault(control, "GET", "/api/accounts/", "5xx")
        delay = advance_row(ctx, row_id)
    finally:
        ctx.close()
    assert delay is not None and delay <= 1.0, delay
    row = read_row(settings, row_id)
    assert (row.state, row.ambiguous) == ("pending", True)
    assert api_calls(control) == [FIND_CARD]


def test_a_row_taken_over_too_often_looks_then_fails_with_the_card_known_not_loaded(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    row_id = stored_row(settings, CARD)
    with session_scope(settings.database_url) as session:
        session.execute(
            update(Row)
            .where(Row.id == row_id)
            .values(state="loading", lease_until=utcnow(), load_attempts=6)
        )
    run_to_rest(ctx, row_id)
    row = read_row(settings, row_id)
    assert (row.state, row.error_code, row.ambiguous) == ("failed", "LEASE_EXPIRED", False)
    assert "not loaded" in (row.error_detail or "")
    assert api_calls(control) == [FIND_CARD]


def test_a_worker_that_loses_the_lease_mid_step_makes_no_further_call(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    ctx = _context(settings, sandbox, lease_seconds=1.2, centrapay_timeout_seconds=5.0)
    control.patch("/config", json={"latencyMs": 1500})
    row_id = stored_row(settings, "99020000001")  # DUPLICATE_ASSET: its answer asks a lookup

    def take_over() -> None:
        time.sleep(0.3)
        with session_scope(settings.database_url) as session:
            session.execute(update(Row).where(Row.id == row_id).values(lease_until=utcnow()))
            claim = transitions.claim(
                session, row_id=row_id, step="load", now=utcnow(), lease=ctx.lease * 100
            )
            assert claim is not None and claim.ambiguous

    rival = threading.Thread(target=take_over)
    rival.start()
    try:
        assert advance_row(ctx, row_id) is None
    finally:
        rival.join()
        ctx.close()
    assert api_calls(control) == [LOAD]
    row = read_row(settings, row_id)
    assert (row.state, row.error_code) == ("loading", None), "the new holder owns the row"


def _retry(settings: Settings, batch_id: int) -> None:
    with session_scope(settings.database_url) as session:
        result = retry(
            session, batch_id=batch_id, vault=vault_from_settings(settings), now=utcnow()
        )
    assert result.retried


def test_an_operators_retry_gives_the_row_a_fresh_automatic_retry_budget(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, sandbox: SandboxHandle
) -> None:
    row_id = stored_row(settings, CARD, state="failed")
    set_row(settings, row_id, load_attempts=6, error_code="SERVER_ERROR")
    _retry(settings, read_row(settings, row_id).batch_id)
    plan_fault(control, "POST", "/api/external-assets", "5xx", count=2)
    run_to_rest(ctx, row_id)
    assert api_calls(control) == [LOAD, LOAD, LOAD], "a fresh budget: two 5xx, then sent"
    _assert_sent_once(settings, control, sandbox, row_id)


def test_a_retried_row_whose_delivery_was_unknown_looks_before_it_sends(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    load_out_of_band(ctx.client, CARD, transfer=True)
    row_id = stored_row(settings, CARD, state="failed")
    set_row(settings, row_id, ambiguous=True)
    _retry(settings, read_row(settings, row_id).batch_id)
    run_to_rest(ctx, row_id)
    assert read_row(settings, row_id).transfer_id_pending
    assert api_calls(control)[1:] == [FIND_CARD]
    assert card_ledger(control, CARD)["loads"] == 1


def test_a_retried_row_whose_card_its_recipient_claimed_since_fails_with_delivery_unknown(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    """The soak's row, minutes after it failed unsure: delivered, then claimed, so no longer
    in our account. Its load is refused (DUPLICATE_ASSET) and the lookup finds nothing:
    that cannot tell "not delivered" from "delivered and claimed"."""
    load_out_of_band(ctx.client, CARD, transfer=True)
    claimed_by_recipient(control)
    row_id = stored_row(settings, CARD, state="failed")
    set_row(settings, row_id, load_attempts=6, error_code="TIMEOUT", ambiguous=True)
    _retry(settings, read_row(settings, row_id).batch_id)
    run_to_rest(ctx, row_id)
    row = read_row(settings, row_id)
    assert (row.state, row.error_code, row.ambiguous) == ("failed", "DUPLICATE_ASSET", True)
    assert api_calls(control)[1:] == [FIND_CARD, LOAD, FIND_CARD]
    assert card_ledger(control, CARD)["loads"] == 1


def test_a_row_that_learns_late_its_card_was_transferred_still_gets_its_transfer_id(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, list_order: str
) -> None:

    def sent_out_of_band(card: str) -> tuple[str, str]:
        loaded = load_out_of_band(ctx.client, card, transfer=True)
        assert loaded.transfer is not None
        return loaded.asset.id, loaded.transfer.id

    def pending_row(card: str, asset_id: str) -> int:
        row_id = stored_row(settings, card, state="sent")
        set_row(settings, row_id, asset_id=asset_id)
        return row_id

    early_asset, early_transfer = sent_out_of_band("23409700001")
    made = control.post("/accounts/sandbox-account/history", json={"transfers": 250})
    assert made.status_code == 200, made.text
    late_asset, late_transfer = sent_out_of_band("23409700002")
    late = pending_row("23409700002", late_asset)
    for _ in range(SYNC_RUNS_MAX):
        if not sync_transfer_ids(database_url=settings.database_url, client=ctx.client).pending:
            break
    assert read_row(settings, late).transfer_id == late_transfer
    early = pending_row("23409700001", early_asset)
    for _ in range(SYNC_RUNS_MAX):
        if not sync_transfer_ids(database_url=settings.database_url, client=ctx.client).pending:
            break
    assert read_row(settings, early).transfer_id == early_transfer


def test_a_fault_on_a_listing_page_is_asked_again_within_the_same_sync_run(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, sandbox: SandboxHandle
) -> None:
    row_id = _row_through_fault(ctx, settings, control, "timeout")
    plan_fault(control, "GET", "/api/asset-transfers", "5xx")
    report = sync_transfer_ids(database_url=settings.database_url, client=ctx.client)
    assert (report.resolved, report.pages) == (1, 2)
    _assert_sent_once(settings, control, sandbox, row_id)


def test_a_walk_from_the_front_that_runs_out_of_pages_goes_on_where_it_stopped(
    settings: Settings, ctx: PipelineContext, control: httpx.Client
) -> None:
    assert control.patch("/config", json={"listOrder": "newest"}).status_code == 200

    def pending_row(card: str) -> tuple[int, str]:
        loaded = load_out_of_band(ctx.client, card, transfer=True)
        assert loaded.transfer is not None
        row_id = stored_row(settings, card, state="sent")
        set_row(settings, row_id, asset_id=loaded.asset.id)
        return row_id, loaded.transfer.id

    load_out_of_band(ctx.client, "23409600000", transfer=True)
    pending_row("23409600001")  # with the one before: the first page shows newest first
    assert sync_transfer_ids(database_url=settings.database_url, client=ctx.client).pending == 0
    older, older_transfer = pending_row("23409600002")
    made = control.post("/accounts/sandbox-account/history", json={"transfers": 350})
    assert made.status_code == 200, made.text
    newest, newest_transfer = pending_row("23409600003")
    first = sync_transfer_ids(database_url=settings.database_url, client=ctx.client, max_pages=2)
    assert (first.pages, first.pending) == (2, 1)
    assert read_row(settings, newest).transfer_id == newest_transfer
    second = sync_transfer_ids(database_url=settings.database_url, client=ctx.client, max_pages=2)
    assert second.pending == 0
    assert read_row(settings, older).transfer_id == older_transfer
