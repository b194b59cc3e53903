"""The dashboard over real HTTP: login, what the pages show, escaping, and the buttons."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from distributor.api.deps import FORM_TOKEN_TTL_SECONDS, form_token
from distributor.config import Settings
from distributor.constants import BatchState
from tests.conftest import TEST_API_TOKEN
from tests.integration.dashboard.dashboard_helpers import (
    Spec,
    card_for,
    form_token_of,
    specs,
    store_batch,
)

HOSTILE = "<script>alert(1)</script>"


def _failed_groups() -> list[Spec]:
    return [
        *specs(sent=3, pending=1),
        Spec(state="failed", error_code="UNKNOWN_ASSET", error_detail="no such card"),
        Spec(state="failed", error_code="UNKNOWN_ASSET", error_detail="no such card"),
        Spec(state="failed", error_code="INSUFFICIENT_WALLET_BALANCE", error_detail="top up"),
    ]


def _count(page: httpx.Response, state: str) -> int:
    found = re.search(rf'data-state="{state}"><b>([\d,]+)</b>', page.text)
    assert found is not None, f"no count for {state}"
    return int(found.group(1).replace(",", ""))


def _post(
    browser: httpx.Client, batch_id: int, action: str, **form: str
) -> tuple[httpx.Response, httpx.Response]:
    """Press a button as a browser would: read the page, post its form, follow the redirect."""
    page = browser.get(f"/dashboard/batches/{batch_id}")
    answer = browser.post(
        f"/dashboard/batches/{batch_id}/{action}",
        data={"csrf_token": form_token_of(page), **form},
    )
    return answer, browser.get(f"/dashboard/batches/{batch_id}")


@pytest.mark.parametrize(
    "auth",
    [None, ("operator", "wrong"), ("", ""), httpx.BasicAuth("operator", TEST_API_TOKEN + "x")],
)
def test_every_dashboard_page_wants_the_api_token(base_url: str, auth: object) -> None:
    with httpx.Client(base_url=base_url, auth=auth) as client:  # type: ignore[arg-type]
        for path in ("/dashboard", "/dashboard/batches/1", "/dashboard/batches/1/report.csv"):
            answer = client.get(path)
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"].startswith("Basic ")
        assert client.post("/dashboard/batches/1/cancel").status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {TEST_API_TOKEN}"},
        {"Authorization": "Basic " + "YW55b25lOnRlc3QtYXBpLXRva2Vu"},  # anyone:test-api-token
    ],
)
def test_a_bearer_token_or_basic_auth_with_any_user_name_opens_the_dashboard(
    base_url: str, headers: dict[str, str]
) -> None:
    assert httpx.get(base_url + "/dashboard", headers=headers).status_code == 200


def test_the_batch_list_shows_each_batch_with_its_state_and_counts(
    settings: Settings, browser: httpx.Client
) -> None:
    store_batch(settings, specs(sent=2, pending=3), name="first.csv", batch_index=1)
    store_batch(
        settings, specs(sent=1, failed=1), state=BatchState.DONE, name="second.csv", batch_index=2
    )
    page = browser.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.index("second.csv") < page.text.index("first.csv")
    assert "state-running" in page.text
    assert "state-done" in page.text
    assert 'http-equiv="refresh"' in page.text


def test_the_batch_page_shows_counts_rate_eta_and_a_retry_button_per_error_code(
    settings: Settings, browser: httpx.Client
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=3)
    batch_id = store_batch(settings, _failed_groups(), started_at=started)
    page = browser.get(f"/dashboard/batches/{batch_id}")
    assert page.status_code == 200
    assert (_count(page, "sent"), _count(page, "failed"), _count(page, "pending")) == (3, 3, 1)
    assert re.search(r'id="rate">\d+\.\d\d<', page.text)
    assert re.search(r'id="eta">\d+ s<', page.text)
    groups = re.findall(r'name="error_code" value="([^"]+)"', page.text)
    assert groups == ["UNKNOWN_ASSET", "INSUFFICIENT_WALLET_BALANCE"]
    assert f'href="/dashboard/batches/{batch_id}/report.csv"' in page.text
    for action in ("pause", "cancel"):
        assert f'action="/dashboard/batches/{batch_id}/{action}"' in page.text
    assert f'action="/dashboard/batches/{batch_id}/resume"' not in page.text


def test_a_paused_batch_page_says_why_and_offers_resume(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(
        settings,
        specs(pending=2),
        state=BatchState.PAUSED,
        pause_reason="Centrapay said 401: check CENTRAPAY_API_KEY",
    )
    page = browser.get(f"/dashboard/batches/{batch_id}")
    assert "Centrapay said 401: check CENTRAPAY_API_KEY" in page.text
    assert f'action="/dashboard/batches/{batch_id}/resume"' in page.text
    assert 'http-equiv="refresh"' not in page.text


def test_only_a_running_batch_page_refreshes_itself(
    settings: Settings, browser: httpx.Client
) -> None:
    running = store_batch(settings, specs(pending=1), batch_index=1)
    done = store_batch(settings, specs(sent=1), state=BatchState.DONE, batch_index=2)
    refresh = f'content="5; url=/dashboard/batches/{running}"'
    assert refresh in browser.get(f"/dashboard/batches/{running}").text
    assert 'http-equiv="refresh"' not in browser.get(f"/dashboard/batches/{done}").text


def test_hostile_names_messages_errors_and_reasons_render_as_text(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(
        settings,
        [Spec(state="failed", error_code=HOSTILE, error_detail=HOSTILE, message=HOSTILE)],
        state=BatchState.PAUSED,
        name=HOSTILE + ".csv",
        pause_reason=HOSTILE,
    )
    for path in ("/dashboard", f"/dashboard/batches/{batch_id}"):
        page = browser.get(path)
        assert "<script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_pages_show_no_pin_no_card_number_and_no_clear_phone(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, _failed_groups())
    pages = browser.get("/dashboard").text + browser.get(f"/dashboard/batches/{batch_id}").text
    for line in range(1, 8):
        assert card_for(0, line) not in pages
        assert f"+6422000{line:04d}" not in pages
        assert f'value="{line:04d}"' not in pages
    assert "*******" + card_for(0, 5)[-5:] in pages
    assert "+64*****0005" in pages


def test_pages_cannot_be_framed_or_run_scripts(settings: Settings, browser: httpx.Client) -> None:
    batch_id = store_batch(settings, specs(pending=1))
    headers = browser.get(f"/dashboard/batches/{batch_id}").headers
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy
    assert "default-src 'none'" in policy
    assert headers["X-Frame-Options"] == "DENY"


def test_the_retry_button_puts_one_error_group_back_to_work(
    settings: Settings, browser: httpx.Client, dispatched: list[int]
) -> None:
    batch_id = store_batch(settings, _failed_groups(), state=BatchState.DONE)
    answer, page = _post(browser, batch_id, "retry", error_code="UNKNOWN_ASSET")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/dashboard/batches/{batch_id}?retried=2&refused=0"
    assert (_count(page, "failed"), _count(page, "pending")) == (1, 3)
    assert "state-running" in page.text
    assert dispatched == [batch_id]
    assert "2 rows put back to work" in browser.get(answer.headers["location"]).text


def test_a_row_loaded_before_it_failed_goes_back_as_loaded(
    settings: Settings, browser: httpx.Client
) -> None:
    specs_ = [Spec(state="failed", error_code="QUOTA_EXCEEDED", asset_id="asset-1")]
    batch_id = store_batch(settings, specs_)
    _answer, page = _post(browser, batch_id, "retry", error_code="QUOTA_EXCEEDED")
    assert (_count(page, "failed"), _count(page, "loaded")) == (0, 1)


def test_the_pause_and_resume_buttons_pause_and_resume_the_batch(
    settings: Settings, browser: httpx.Client, dispatched: list[int]
) -> None:
    batch_id = store_batch(settings, specs(pending=2))
    answer, page = _post(browser, batch_id, "pause")
    assert answer.status_code == 303
    assert "state-paused" in page.text
    assert "paused from the dashboard" in page.text
    _answer, page = _post(browser, batch_id, "resume")
    assert "state-running" in page.text
    assert dispatched == [batch_id]


def test_the_start_button_starts_a_queued_batch(
    settings: Settings, browser: httpx.Client, dispatched: list[int]
) -> None:
    batch_id = store_batch(settings, specs(pending=2), state=BatchState.QUEUED)
    _answer, page = _post(browser, batch_id, "start")
    assert "state-running" in page.text
    assert dispatched == [batch_id]


def test_the_cancel_button_cancels_every_row_not_yet_sent(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, _failed_groups())
    _answer, page = _post(browser, batch_id, "cancel")
    assert "state-cancelled" in page.text
    assert (_count(page, "cancelled"), _count(page, "sent"), _count(page, "failed")) == (4, 3, 0)
    assert f'action="/dashboard/batches/{batch_id}/cancel"' not in page.text


def test_an_action_that_no_longer_fits_the_state_is_refused_with_the_reason(
    settings: Settings, browser: httpx.Client, dispatched: list[int]
) -> None:
    batch_id = store_batch(settings, specs(sent=2), state=BatchState.DONE)
    # the buttons of a page opened while the batch was still running
    token = form_token(settings, TEST_API_TOKEN, now=time.time())
    for action, reason in (("cancel", "there is nothing to cancel"), ("resume", "not paused")):
        answer = browser.post(f"/dashboard/batches/{batch_id}/{action}", data={"csrf_token": token})
        assert answer.status_code == 409
        assert reason in answer.text
        assert "state-done" in answer.text
    assert dispatched == []


def _forged(settings: Settings, kind: str) -> str:
    now = time.time()
    if kind == "another secret key":
        other = settings.model_copy(update={"distributor_secret_key": SecretStr("k" * 40)})
        return form_token(other, TEST_API_TOKEN, now=now)
    if kind == "another API token":
        return form_token(settings, "another-api-token", now=now)
    if kind == "a changed issue time":
        issued, _, mac = form_token(settings, TEST_API_TOKEN, now=now - 60).partition(".")
        return f"{int(issued) + 60}.{mac}"
    return {"missing": "", "malformed": "123.abc", "garbage": "not-a-token"}[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "malformed",
        "garbage",
        "another secret key",
        "another API token",
        "a changed issue time",
    ],
)
def test_a_post_without_this_dashboards_form_token_is_refused(
    settings: Settings, browser: httpx.Client, kind: str
) -> None:
    batch_id = store_batch(settings, specs(pending=2))
    forged = _forged(settings, kind)
    answer = browser.post(f"/dashboard/batches/{batch_id}/pause", data={"csrf_token": forged})
    assert answer.status_code == 403
    assert "state-running" in browser.get(f"/dashboard/batches/{batch_id}").text


def test_a_form_token_is_refused_once_it_is_stale(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, specs(pending=2))
    stale = form_token(settings, TEST_API_TOKEN, now=time.time() - FORM_TOKEN_TTL_SECONDS - 5)
    answer = browser.post(f"/dashboard/batches/{batch_id}/pause", data={"csrf_token": stale})
    assert answer.status_code == 403
    fresh = form_token(settings, TEST_API_TOKEN, now=time.time())
    answer = browser.post(f"/dashboard/batches/{batch_id}/pause", data={"csrf_token": fresh})
    assert answer.status_code == 303


def test_the_report_link_downloads_the_csv_with_basic_auth(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, _failed_groups())
    answer = browser.get(f"/dashboard/batches/{batch_id}/report.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert len(answer.text.strip().splitlines()) == 1 + 7


def test_a_batch_that_does_not_exist_is_not_found(browser: httpx.Client) -> None:
    assert browser.get("/dashboard/batches/999999").status_code == 404
