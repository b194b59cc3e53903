"""A long history in one control call (``POST /_sandbox/accounts/{accountId}/history``):
many earlier loaded-and-transferred cards, made fast, outside the request log and the card
ledger, with card numbers no load can name."""

from __future__ import annotations

import time

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from tests.integration.sandbox.sandbox_helpers import (
    DOC_ACCOUNT,
    advance,
    client_for,
    load,
    load_body,
    walk_pages,
)

HISTORY = f"/_sandbox/accounts/{DOC_ACCOUNT}/history"
ASSETS = f"/api/accounts/{DOC_ACCOUNT}/assets"
SENT = {"senderAccountId": DOC_ACCOUNT}
BIG = 20_000
BIG_MAX_SECONDS = 3.0
CLAIMED_AFTER_SECONDS = 61


def make(control: httpx.Client, transfers: int, **extra: object) -> dict[str, object]:
    response = control.post(HISTORY, json={"transfers": transfers, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_twenty_thousand_transfers_are_made_in_well_under_a_few_seconds(
    control: httpx.Client,
) -> None:
    started = time.monotonic()
    answer = make(control, BIG)
    assert time.monotonic() - started < BIG_MAX_SECONDS
    assert answer == {"accountId": DOC_ACCOUNT, "transfers": BIG, "claimed": True}
    sent = control.get(f"/_sandbox/accounts/{DOC_ACCOUNT}/transfers").json()["items"]
    assert len(sent) == BIG
    assert {item["status"] for item in sent} == {"claimed"}
    assert len({item["cardNumber"] for item in sent}) == BIG


def test_history_is_not_in_the_request_log_nor_the_card_ledger(control: httpx.Client) -> None:
    make(control, 50)
    assert control.get("/_sandbox/ledger").json() == {"cards": {}, "maxLoads": 0, "requestCount": 0}


def test_claimed_history_is_in_the_sent_listing_and_not_in_the_account_assets(
    api: httpx.Client, control: httpx.Client
) -> None:
    make(control, 7)
    pages = walk_pages(api, "/api/asset-transfers", **SENT)
    items = [item for page in pages for item in page]
    assert len(items) == 7
    assert {(item["status"], item["senderAccountId"]) for item in items} == {
        ("claimed", DOC_ACCOUNT)
    }
    assets = [item for page in walk_pages(api, ASSETS) for item in page]
    assert [item["category"] for item in assets] == ["money"]


def test_unclaimed_history_is_transferred_in_the_account_until_the_lifecycle_claims_it(
    api: httpx.Client, control: httpx.Client
) -> None:
    make(control, 5, claimed=False)
    giftcards = [
        item for page in walk_pages(api, ASSETS) for item in page if item["category"] == "giftcard"
    ]
    assert [item["status"] for item in giftcards] == ["transferred"] * 5
    advance(control, CLAIMED_AFTER_SECONDS)
    sent = [item for page in walk_pages(api, "/api/asset-transfers", **SENT) for item in page]
    assert {item["status"] for item in sent} == {"claimed"}
    assert [item["category"] for page in walk_pages(api, ASSETS) for item in page] == ["money"]


def test_history_comes_before_what_the_account_sends_next(
    api: httpx.Client, control: httpx.Client
) -> None:
    make(control, 4)
    asset = load(api, "65000000017")
    newest = api.get("/api/asset-transfers", params=SENT).json()["items"]
    assert all(item["assetId"] != asset["id"] for item in newest)
    sent = api.post(
        "/api/asset-transfers", json={"assetId": asset["id"], "recipientAlias": "+64221231234"}
    ).json()
    assert api.get("/api/asset-transfers", params=SENT).json()["items"][0]["id"] == sent["id"]


def test_a_history_card_number_cannot_be_loaded(
    sandbox: SandboxHandle, control: httpx.Client
) -> None:
    make(control, 1)
    [item] = control.get(f"/_sandbox/accounts/{DOC_ACCOUNT}/transfers").json()["items"]
    assert not item["cardNumber"].isdigit()
    with client_for(sandbox) as api:
        response = api.post("/api/external-assets", json=load_body(item["cardNumber"]))
    assert (response.status_code, response.json()["message"]) == (403, "UNKNOWN_ASSET")


def test_history_for_an_unknown_account_is_a_404(control: httpx.Client) -> None:
    response = control.post("/_sandbox/accounts/NoSuchAccount/history", json={"transfers": 1})
    assert (response.status_code, response.json()["message"]) == (404, "ACCOUNT_NOT_FOUND")


@pytest.mark.parametrize("body", [{}, {"transfers": -1}, {"transfers": 1, "colour": "red"}])
def test_a_malformed_history_request_is_a_400(
    control: httpx.Client, body: dict[str, object]
) -> None:
    assert control.post(HISTORY, json=body).status_code == 400
