"""Resend and reclaim from the batch page against a real sandbox: the dashboard's reclaim
cancels transfers at Centrapay, and a resent card goes out in a new transfer of the same
asset, made by the row's own pipeline step (run here in the test's process)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from centrapay_sandbox.server import SandboxHandle
from distributor.config import Settings
from distributor.db import session_scope
from distributor.delivery import RECLAIMED, delivery_of
from distributor.models import Row, RowTransfer
from distributor.pipeline import tracking
from distributor.pipeline.context import PipelineContext, build_context
from distributor.pipeline.steps import advance_row
from distributor.ratelimit.local import LocalTokenBucket
from tests.factories import store_running_batch
from tests.integration.dashboard.dashboard_helpers import form_token_of
from tests.integration.tracking.tracking_helpers import NEVER_CLAIMS

CARD = "23400000101"
CLAIMS = "+64221231234"
"""The sandbox claims a transfer to this phone a simulated minute after it is made."""
CLAIMED_AFTER_SECONDS = 61
SENT_AFTER_SECONDS = 6
REFUSED_BY_CENTRAPAY = "+15555550100"
"""Not an NZ number: the sandbox refuses a transfer to it (400); an upload never lets one in."""
CORRECTED = "+64221119876"
WAIT_SECONDS = 10.0


@pytest.fixture
def settings(settings: Settings, sandbox: SandboxHandle) -> Settings:
    """The test's settings (so the app's too) calling the sandbox, a step per call: a
    refused transfer leaves its card loaded."""
    return settings.model_copy(
        update={"centrapay_base_url": sandbox.base_url, "centrapay_single_call": False}
    )


@pytest.fixture
def ctx(settings: Settings) -> Iterator[PipelineContext]:
    """A pipeline context on the sandbox with plenty of tokens, as a worker's."""
    context = build_context(
        settings,
        bucket=LocalTokenBucket(rate_per_second=1000.0, burst=100),
        base_url=settings.centrapay_base_url or "",
    )
    yield context
    context.close()


def _sent_batch(settings: Settings, ctx: PipelineContext, recipient: str) -> tuple[int, Row]:
    """A batch of one card, taken through its load and transfer; its id and its row."""
    batch_id = store_running_batch(settings, [(CARD, "1234", recipient)])
    advance_row(ctx, _row(settings, batch_id).id)
    return batch_id, _row(settings, batch_id)


def _row(settings: Settings, batch_id: int) -> Row:
    with session_scope(settings.database_url) as session:
        return session.scalars(select(Row).where(Row.batch_id == batch_id)).one()


def _press(browser: httpx.Client, batch_id: int, path: str, **form: str) -> httpx.Response:
    """Post one of the batch page's forms with its token; the page the redirect leads to."""
    page = browser.get(f"/dashboard/batches/{batch_id}")
    answer = browser.post(
        f"/dashboard/batches/{batch_id}/{path}", data={"csrf_token": form_token_of(page), **form}
    )
    assert answer.status_code == 303, answer.text
    return browser.get(answer.headers["location"])


def _centrapay_status(ctx: PipelineContext, transfer_id: str | None) -> str:
    assert transfer_id is not None
    return str(ctx.client.get_transfer(transfer_id).status)


def _wait_at_centrapay(ctx: PipelineContext, transfer_id: str | None, status: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while _centrapay_status(ctx, transfer_id) != status:
        assert time.monotonic() < deadline, f"the transfer did not become {status}"
        time.sleep(0.05)


def _sent_batch_until(
    settings: Settings,
    ctx: PipelineContext,
    control: httpx.Client,
    recipient: str,
    *,
    status: str,
    after: float,
) -> tuple[int, Row]:
    """A batch of one card sent to ``recipient``, its transfer ``status`` at Centrapay once
    the sandbox's clock has moved ``after`` seconds on; its id and its row as sent."""
    batch_id, sent = _sent_batch(settings, ctx, recipient)
    control.post("/clock/advance", json={"seconds": after}).raise_for_status()
    _wait_at_centrapay(ctx, sent.transfer_id, status)
    return batch_id, sent


def _ledger(control: httpx.Client) -> dict[str, int]:
    counts = control.get("/ledger").json()["cards"][CARD]
    return {"loads": counts["loads"], "transfers": counts["transfers"]}


def test_the_row_reclaim_button_cancels_a_sent_transfer_at_centrapay(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, browser: httpx.Client
) -> None:
    batch_id, sent = _sent_batch_until(
        settings, ctx, control, NEVER_CLAIMS, status="sent", after=SENT_AFTER_SECONDS
    )
    assert tracking.refresh_transfer(ctx, sent.id) == "sent"
    assert 'class="reclaim-row"' in browser.get(f"/dashboard/batches/{batch_id}").text

    page = _press(browser, batch_id, "reclaim", row_id=str(sent.id))

    assert _centrapay_status(ctx, sent.transfer_id) == "cancelled"
    after = _row(settings, batch_id)
    assert (after.transfer_status, delivery_of(after)) == ("cancelled", RECLAIMED)
    assert "1 transfer reclaimed" in page.text
    assert 'class="reclaim-row"' not in page.text
    assert 'class="resend"' in page.text, "the card is ours again: it can be resent"
    assert "<code>reclaim</code>" in page.text, "the audit section lists the reclaim"


def test_the_batch_reclaim_leaves_transfers_sent_more_recently_than_its_days(
    settings: Settings, ctx: PipelineContext, browser: httpx.Client
) -> None:
    batch_id, sent = _sent_batch(settings, ctx, NEVER_CLAIMS)
    page = _press(browser, batch_id, "reclaim", older_than_days="1")
    assert "0 transfers reclaimed" in page.text
    assert _centrapay_status(ctx, sent.transfer_id) in ("created", "sent")
    page = _press(browser, batch_id, "reclaim", older_than_days="0")
    assert "1 transfer reclaimed" in page.text
    assert _centrapay_status(ctx, sent.transfer_id) == "cancelled"


def test_a_transfer_its_recipient_claimed_first_is_refused_by_centrapay_and_counted(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, browser: httpx.Client
) -> None:
    batch_id, sent = _sent_batch_until(
        settings, ctx, control, CLAIMS, status="claimed", after=CLAIMED_AFTER_SECONDS
    )

    page = _press(browser, batch_id, "reclaim", row_id=str(sent.id))

    assert "0 transfers reclaimed" in page.text
    assert "1 refused by Centrapay: claimed by the recipient first" in page.text
    assert _row(settings, batch_id).transfer_status == sent.transfer_status


def test_a_card_reclaimed_from_the_dashboard_is_resent_in_a_new_transfer_of_the_same_asset(
    settings: Settings,
    ctx: PipelineContext,
    control: httpx.Client,
    browser: httpx.Client,
    dispatched: list[int],
) -> None:
    batch_id, sent = _sent_batch(settings, ctx, NEVER_CLAIMS)
    _press(browser, batch_id, "reclaim", older_than_days="0")

    page = _press(browser, batch_id, f"rows/{sent.id}/resend", recipient=CORRECTED)
    assert "1 row resent" in page.text
    assert dispatched == [batch_id]
    advance_row(ctx, sent.id)

    after = _row(settings, batch_id)
    assert (after.state, after.recipient, after.asset_id) == ("sent", CORRECTED, sent.asset_id)
    assert after.transfer_id not in (None, sent.transfer_id)
    assert _ledger(control) == {"loads": 1, "transfers": 2}
    with session_scope(settings.database_url) as session:
        earlier = session.scalars(select(RowTransfer).where(RowTransfer.row_id == sent.id)).one()
        assert (earlier.transfer_id, earlier.transfer_status) == (sent.transfer_id, "cancelled")


def test_a_card_refused_on_its_recipient_is_resent_from_the_dashboard(
    settings: Settings, ctx: PipelineContext, control: httpx.Client, browser: httpx.Client
) -> None:
    batch_id, failed = _sent_batch(settings, ctx, REFUSED_BY_CENTRAPAY)
    assert (failed.state, failed.error_code) == ("failed", "BAD_REQUEST")
    assert failed.asset_id is not None

    _press(browser, batch_id, f"rows/{failed.id}/resend", recipient=CORRECTED, message="Sorry!")
    advance_row(ctx, failed.id)

    after = _row(settings, batch_id)
    assert (after.state, after.asset_id, after.message) == ("sent", failed.asset_id, "Sorry!")
    assert _ledger(control) == {"loads": 1, "transfers": 1}
