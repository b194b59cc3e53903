"""The batch page's Resend and Reclaim controls: where they are offered, and what a resend
does, or why it is refused. Reclaims that reach Centrapay: test_resend_reclaim_sandbox.py."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import func, select

from distributor.api.deps import FORM_TOKEN_TTL_SECONDS, form_token
from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.models import AuditEntry, Row, RowTransfer
from tests.conftest import TEST_API_TOKEN
from tests.integration.dashboard.dashboard_helpers import Spec, form_token_of, store_batch

CORRECTED = "+64221119876"
RETURNED = Spec(state=RowState.SENT, asset_id="asset-1", transfer_status="returned")
UNCLAIMED = Spec(state=RowState.SENT, asset_id="asset-2", transfer_status="sent")
ROW_FORMS = {"resend": 'class="resend"', "reclaim": 'class="reclaim-row"'}


def _only_row(settings: Settings, batch_id: int) -> Row:
    with session_scope(settings.database_url) as session:
        return session.scalars(select(Row).where(Row.batch_id == batch_id)).one()


def _row_controls(page: str) -> set[str]:
    """The controls the rows table shows (for a batch of one row: that row's)."""
    return {name for name, form in ROW_FORMS.items() if form in page}


def _audited(settings: Settings, action: str) -> int:
    with session_scope(settings.database_url) as session:
        query = select(func.count()).where(AuditEntry.action == action)
        return session.scalar(query) or 0


def _resend(
    browser: httpx.Client, batch_id: int, row_id: int, recipient: str, **form: str
) -> httpx.Response:
    """Type the new number into the row's Resend form and press it, as a browser would."""
    page = browser.get(f"/dashboard/batches/{batch_id}")
    return browser.post(
        f"/dashboard/batches/{batch_id}/rows/{row_id}/resend",
        data={"csrf_token": form_token_of(page), "recipient": recipient, **form},
    )


@pytest.mark.parametrize(
    ("spec", "controls"),
    [
        (RETURNED, {"resend"}),
        (Spec(state="sent", asset_id="a", transfer_status="cancelled"), {"resend"}),
        (Spec(state="failed", asset_id="a", error_code="BAD_REQUEST"), {"resend"}),
        (Spec(state="sent", asset_id="a", transfer_status="created"), {"reclaim"}),
        (UNCLAIMED, {"reclaim"}),
        (Spec(state="sent", asset_id="a", transfer_status="expired"), set()),
        (Spec(state="sent", asset_id="a", transfer_status="claimed"), set()),
        (Spec(state="sent", asset_id="a"), set()),
        (Spec(state="failed", error_code="UNKNOWN_ASSET"), set()),
        (Spec(state="failed", asset_id="a", error_code="TIMEOUT", ambiguous=True), set()),
        (Spec(state="loaded", asset_id="a"), set()),
    ],
)
def test_a_row_offers_resend_when_its_card_is_ours_again_and_reclaim_while_unclaimed(
    settings: Settings, browser: httpx.Client, spec: Spec, controls: set[str]
) -> None:
    batch_id = store_batch(settings, [spec], state=BatchState.DONE)
    page = browser.get(f"/dashboard/batches/{batch_id}").text
    assert _row_controls(page) == controls
    assert ('id="reclaim"' in page) == ("reclaim" in controls), "the batch's Reclaim form"


def test_a_cancelled_batch_offers_no_resend_but_still_reclaims_its_unclaimed_transfers(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, [RETURNED, UNCLAIMED], state=BatchState.CANCELLED)
    page = browser.get(f"/dashboard/batches/{batch_id}").text
    assert _row_controls(page) == {"reclaim"}
    assert 'id="reclaim"' in page
    assert "1 sent card not claimed yet" in page


def test_the_resend_button_puts_the_card_back_to_transfer_to_the_new_number(
    settings: Settings, browser: httpx.Client, dispatched: list[int]
) -> None:
    batch_id = store_batch(settings, [RETURNED], state=BatchState.DONE)
    before = _only_row(settings, batch_id)
    answer = _resend(browser, batch_id, before.id, "022 111 9876", message="Sorry!")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/dashboard/batches/{batch_id}?resent=1"
    after = _only_row(settings, batch_id)
    assert (after.state, after.asset_id, after.transfer_id) == (RowState.LOADED, "asset-1", None)
    assert (after.recipient, after.message) == (CORRECTED, "Sorry!")
    assert dispatched == [batch_id]
    assert _audited(settings, "resend") == 1
    page = browser.get(answer.headers["location"]).text
    assert "1 row resent" in page
    assert "state-running" in page
    assert f"returned to {before.recipient_masked}" in page, "the earlier transfer is listed"
    assert CORRECTED not in page


def test_a_resend_without_a_message_keeps_the_rows(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, [RETURNED], state=BatchState.DONE)
    row_id = _only_row(settings, batch_id).id
    assert _resend(browser, batch_id, row_id, CORRECTED, message="").status_code == 303
    assert _only_row(settings, batch_id).message == "Hello"


@pytest.mark.parametrize(
    ("recipient", "message", "problem"),
    [
        ("12345", "", "recipientAlias: not a valid NZ phone number"),
        ("", "", "recipientAlias: missing"),
        (CORRECTED, "x" * 101, "message: 101 characters; the limit is 100"),
    ],
)
def test_a_resend_to_a_number_or_message_an_upload_would_refuse_shows_the_problem(
    settings: Settings,
    browser: httpx.Client,
    dispatched: list[int],
    recipient: str,
    message: str,
    problem: str,
) -> None:
    batch_id = store_batch(settings, [RETURNED], state=BatchState.DONE)
    row_id = _only_row(settings, batch_id).id
    answer = _resend(browser, batch_id, row_id, recipient, message=message)
    assert answer.status_code == 422  # as the API answers it
    assert answer.headers["content-type"].startswith("text/html")
    assert '<section class="problem" role="alert">' + problem in answer.text
    assert _only_row(settings, batch_id).state == RowState.SENT
    assert dispatched == []
    assert _audited(settings, "resend") == 0


def test_a_resend_of_a_row_with_a_live_transfer_is_refused_with_the_reason(
    settings: Settings, browser: httpx.Client, dispatched: list[int]
) -> None:
    batch_id = store_batch(settings, [UNCLAIMED], state=BatchState.DONE)
    row_id = _only_row(settings, batch_id).id
    # the form of a page opened before the transfer went out again: there is none now
    token = form_token(settings, TEST_API_TOKEN, now=time.time())
    answer = browser.post(
        f"/dashboard/batches/{batch_id}/rows/{row_id}/resend",
        data={"csrf_token": token, "recipient": CORRECTED},
    )
    assert answer.status_code == 409
    assert f"row {row_id} has a live transfer (sent); reclaim it first" in answer.text
    assert "state-done" in answer.text
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(RowTransfer)).first() is None
    assert dispatched == []


def test_a_resend_of_a_row_of_another_batch_is_not_found(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, [RETURNED], state=BatchState.DONE, batch_index=1)
    other = store_batch(settings, [RETURNED], state=BatchState.DONE, batch_index=2)
    answer = _resend(browser, batch_id, _only_row(settings, other).id, CORRECTED)
    assert answer.status_code == 404


@pytest.mark.parametrize("action", ["resend", "reclaim"])
def test_a_resend_or_reclaim_with_a_stale_form_token_is_refused(
    settings: Settings, browser: httpx.Client, action: str
) -> None:
    spec = RETURNED if action == "resend" else UNCLAIMED
    batch_id = store_batch(settings, [spec], state=BatchState.DONE)
    row_id = _only_row(settings, batch_id).id
    path, form = {
        "resend": (f"rows/{row_id}/resend", {"recipient": CORRECTED}),
        "reclaim": ("reclaim", {"row_id": str(row_id)}),
    }[action]
    stale = form_token(settings, TEST_API_TOKEN, now=time.time() - FORM_TOKEN_TTL_SECONDS - 5)
    answer = browser.post(
        f"/dashboard/batches/{batch_id}/{path}", data={"csrf_token": stale, **form}
    )
    assert answer.status_code == 403
    assert "reload the page" in answer.json()["detail"]
    assert _only_row(settings, batch_id).transfer_status == spec.transfer_status
    assert _audited(settings, action) == 0


def test_a_reclaim_that_cannot_reach_centrapay_shows_why_on_the_batch_page(
    settings: Settings, browser: httpx.Client
) -> None:
    """These settings name no Centrapay: the page says what is missing, with the API's 503."""
    assert settings.centrapay_base_url is None
    batch_id = store_batch(settings, [UNCLAIMED], state=BatchState.DONE)
    row_id = _only_row(settings, batch_id).id
    page = browser.get(f"/dashboard/batches/{batch_id}")
    answer = browser.post(
        f"/dashboard/batches/{batch_id}/reclaim",
        data={"csrf_token": form_token_of(page), "row_id": str(row_id)},
    )
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert "CENTRAPAY_BASE_URL" in answer.text
    assert _only_row(settings, batch_id).transfer_status == UNCLAIMED.transfer_status
    assert _audited(settings, "reclaim") == 0
