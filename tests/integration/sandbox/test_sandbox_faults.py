"""Injected faults on /api, set at run time: latency, 5xx and 429 answers that are not
applied, and requests that are applied but whose answer is lost (timeout, dropped
connection). The control routes are never affected."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from tests.integration.sandbox.sandbox_helpers import (
    DOC_ACCOUNT,
    assert_rate_limited,
    client_for,
    load_body,
)

CARD = "60000000017"
ALL_FAULTS = {"latencyMs": 200, "fault5xx": 1, "fault429": 1, "faultTimeout": 1, "faultDrop": 1}


def set_faults(control: httpx.Client, **knobs: Any) -> None:
    control.patch("/_sandbox/config", json=knobs).raise_for_status()


def card_loads(control: httpx.Client) -> int:
    return int(control.get(f"/_sandbox/ledger/cards/{CARD}").json()["loads"])


def held_card_numbers(api: httpx.Client) -> list[str]:
    items = api.get(f"/api/accounts/{DOC_ACCOUNT}/assets").json()["items"]
    return [item["externalId"] for item in items if item["category"] == "giftcard"]


def test_added_latency_delays_api_answers(api: httpx.Client, control: httpx.Client) -> None:
    set_faults(control, latencyMs=300)
    started = time.monotonic()
    assert api.get(f"/api/accounts/{DOC_ACCOUNT}/assets").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_an_injected_5xx_is_not_applied(api: httpx.Client, control: httpx.Client) -> None:
    set_faults(control, fault5xx=1)
    response = api.post("/api/external-assets", json=load_body(CARD))
    assert response.status_code in (500, 502, 503)
    assert response.json()["statusCode"] == response.status_code
    assert card_loads(control) == 0


def test_an_injected_429_is_not_applied_and_says_when_to_retry(
    api: httpx.Client, control: httpx.Client
) -> None:
    set_faults(control, fault429=1)
    assert_rate_limited(api.post("/api/external-assets", json=load_body(CARD)))
    assert card_loads(control) == 0


def test_a_timed_out_load_was_applied_and_the_asset_exists_afterwards(
    sandbox: SandboxHandle, api: httpx.Client, control: httpx.Client
) -> None:
    set_faults(control, faultTimeout=1)
    with client_for(sandbox, timeout=0.5) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/api/external-assets", json=load_body(CARD))
    set_faults(control, faultTimeout=0)
    assert held_card_numbers(api) == [CARD]
    assert card_loads(control) == 1


def test_a_client_that_waits_out_the_hold_gets_a_504_after_the_load_was_applied(
    api: httpx.Client, control: httpx.Client
) -> None:
    set_faults(control, faultTimeout=1, timeoutHoldSeconds=0.2)
    response = api.post("/api/external-assets", json=load_body(CARD))
    assert response.status_code == 504
    assert response.json()["error"] == "Gateway Timeout"
    set_faults(control, faultTimeout=0)
    assert held_card_numbers(api) == [CARD]


def test_a_dropped_load_gets_no_answer_at_all_but_was_applied(
    api: httpx.Client, control: httpx.Client
) -> None:
    set_faults(control, faultDrop=1)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        api.post("/api/external-assets", json=load_body(CARD))
    set_faults(control, faultDrop=0)
    assert held_card_numbers(api) == [CARD]
    [record] = [r for r in control.get("/_sandbox/ledger/requests").json()["items"] if r["fault"]]
    assert (record["path"], record["status"], record["fault"]) == (
        "/api/external-assets",
        None,
        "drop",
    )


def test_a_fault_share_hits_about_that_share_of_requests(
    api: httpx.Client, control: httpx.Client
) -> None:
    set_faults(control, fault5xx=0.5)
    statuses = [api.get(f"/api/accounts/{DOC_ACCOUNT}/assets").status_code for _ in range(200)]
    assert 60 <= sum(status >= 500 for status in statuses) <= 140


def test_faults_never_touch_the_control_routes(control: httpx.Client) -> None:
    set_faults(control, **ALL_FAULTS)
    started = time.monotonic()
    assert control.get("/_sandbox/config").json()["fault5xx"] == 1
    assert control.get("/_sandbox/ledger").status_code == 200
    assert time.monotonic() - started < 0.2
