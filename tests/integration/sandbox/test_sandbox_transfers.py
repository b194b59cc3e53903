"""Asset transfers: validation, the magic wallet and quota refusals and how to clear them,
no second transfer of one giftcard, listings page by page, and who may see what."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from tests.integration.sandbox.sandbox_helpers import (
    BOB_KEY,
    BOB_PHONE,
    DOC_ACCOUNT,
    OTHER_ACCOUNT,
    OTHER_KEY,
    PAGE_SIZE,
    client_for,
    load,
    load_body,
)

CARD = "60000000017"
WALLET_CARD = "99060000001"
QUOTA_CARD = "99070000001"
ACCOUNT = f"/_sandbox/accounts/{DOC_ACCOUNT}"


def send(client: httpx.Client, asset_id: str, **extra: Any) -> httpx.Response:
    """POST a transfer of ``asset_id`` to Bob."""
    return client.post(
        "/api/asset-transfers", json={"assetId": asset_id, "recipientAlias": BOB_PHONE, **extra}
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recipientAlias": None}, "recipientAlias"),
        ({"recipientAlias": "+61412345678"}, "recipientAlias"),
        ({"recipientAlias": "+6421123"}, "recipientAlias"),
        ({"assetId": None}, "assetId"),
        ({"message": "x" * 101}, "message"),
        ({"senderName": "x" * 31}, "senderName"),
        ({"description": "x" * 201}, "description"),
        ({"value": "60.00"}, "value"),
        ({"value": 6000}, "value"),
        ({"notifyUrl": "ftp://example.com/hook"}, "notifyUrl"),
        ({"senderAlias": "sender"}, "senderAlias"),
    ],
)
def test_a_malformed_transfer_is_a_400_naming_the_field(
    api: httpx.Client, change: dict[str, Any], field: str
) -> None:
    asset = load(api, CARD)
    body = {"assetId": asset["id"], "recipientAlias": BOB_PHONE} | change
    response = api.post(
        "/api/asset-transfers", json={k: v for k, v in body.items() if v is not None}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith(field)


def test_a_transfer_at_each_documented_limit_is_accepted(api: httpx.Client) -> None:
    asset = load(api, CARD)
    limits = {"message": "x" * 100, "senderName": "x" * 30, "description": "x" * 200}
    assert send(api, asset["id"], **limits).status_code == 200


def test_a_discrete_value_other_than_the_whole_balance_is_a_400(api: httpx.Client) -> None:
    asset = load(api, CARD)
    response = send(api, asset["id"], value="1")
    assert response.status_code == 400


def test_a_transferred_giftcard_cannot_be_transferred_again(api: httpx.Client) -> None:
    asset = load(api, CARD)
    assert send(api, asset["id"]).status_code == 200
    again = send(api, asset["id"])
    assert again.status_code == 403
    assert again.json()["message"] == "ASSET_ALREADY_TRANSFERRED"


def test_a_claimed_giftcard_cannot_be_transferred_again_by_its_sender(
    api: httpx.Client, control: httpx.Client
) -> None:
    asset = load(api, CARD)
    send(api, asset["id"]).raise_for_status()
    control.post("/_sandbox/clock/advance", json={"seconds": 3600}).raise_for_status()
    assert send(api, asset["id"]).json()["message"] == "ASSET_ALREADY_TRANSFERRED"


def test_a_card_in_transfer_cannot_be_loaded_again(api: httpx.Client) -> None:
    asset = load(api, CARD)
    send(api, asset["id"]).raise_for_status()
    response = api.post("/api/external-assets", json=load_body(CARD))
    assert response.json()["message"] == "DUPLICATE_ASSET"


def test_an_unknown_or_foreign_asset_cannot_be_transferred(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    asset = load(api, CARD)
    assert send(api, "NoSuchAsset").json()["message"] == "ASSET_NOT_FOUND"
    with client_for(sandbox, OTHER_KEY) as other:
        assert send(other, asset["id"]).json()["message"] == "ASSET_NOT_FOUND"


def test_a_wallet_card_is_refused_until_the_wallet_is_topped_up(
    api: httpx.Client, control: httpx.Client
) -> None:
    asset = load(api, WALLET_CARD)
    refused = send(api, asset["id"])
    assert refused.status_code == 403
    assert refused.json() == {
        "statusCode": 403,
        "error": "Forbidden",
        "message": "INSUFFICIENT_WALLET_BALANCE",
    }
    control.patch(ACCOUNT, json={"walletBalance": asset["balance"]}).raise_for_status()
    assert send(api, asset["id"]).status_code == 200
    assert control.get(ACCOUNT).json()["walletBalance"] == "0"
    counts = control.get(f"/_sandbox/ledger/cards/{WALLET_CARD}").json()
    assert (counts["loads"], counts["transfers"]) == (1, 1)


@pytest.mark.parametrize(("card_number", "pin"), [(QUOTA_CARD, "1"), ("23403000003", "1111")])
def test_a_quota_card_is_refused_with_the_quotas_until_the_quota_is_raised(
    api: httpx.Client, control: httpx.Client, card_number: str, pin: str
) -> None:
    asset = load(api, card_number, pin=pin)
    refused = send(api, asset["id"]).json()
    assert refused["message"] == "QUOTA_EXCEEDED"
    [quota] = refused["quotas"]
    assert quota["type"] in ("spend", "topup")
    assert quota["period"] in ("daily", "monthly", "yearly")
    assert (quota["limit"], quota["usage"], quota["assetType"]) == ("0", "0", "epay.nzd.main")
    assert "interval" in quota
    control.patch(ACCOUNT, json={"spendQuotaLimit": "100000"}).raise_for_status()
    assert send(api, asset["id"]).status_code == 200
    assert control.get(ACCOUNT).json()["spendQuotaUsage"] == asset["balance"]


def test_a_refused_load_and_transfer_succeeds_on_retry_without_a_second_load(
    api: httpx.Client, control: httpx.Client
) -> None:
    body = load_body(WALLET_CARD, assetTransfer={"recipientAlias": BOB_PHONE})
    refused = api.post("/api/external-assets", json=body)
    assert refused.json()["message"] == "INSUFFICIENT_WALLET_BALANCE"
    control.patch(ACCOUNT, json={"walletBalance": "100000"}).raise_for_status()
    retried = api.post("/api/external-assets", json=body)
    assert retried.status_code == 200
    assert retried.json()["assetTransfer"]["status"] == "created"
    counts = control.get(f"/_sandbox/ledger/cards/{WALLET_CARD}").json()
    assert counts == {"cardNumber": WALLET_CARD, "loads": 1, "repeatLoads": 1, "transfers": 1}


def test_a_wallet_transfer_above_the_balance_is_refused(
    api: httpx.Client, control: httpx.Client
) -> None:
    wallet_id = control.get(ACCOUNT).json()["walletId"]
    assert send(api, wallet_id, value="1").json()["message"] == "INSUFFICIENT_WALLET_BALANCE"
    assert send(api, wallet_id).status_code == 400


def test_sent_transfers_come_page_by_page_newest_first(api: httpx.Client) -> None:
    created = [send(api, load(api, f"6000000{n:04d}")["id"]).json()["id"] for n in range(7)]
    params = {"senderAccountId": DOC_ACCOUNT}
    seen: list[str] = []
    sizes = []
    while True:
        answer = api.get("/api/asset-transfers", params=params).json()
        sizes.append(len(answer["items"]))
        seen += [item["id"] for item in answer["items"]]
        if "nextPageKey" not in answer:
            break
        params["pageKey"] = answer["nextPageKey"]
    assert sizes == [PAGE_SIZE, PAGE_SIZE, 1]
    assert seen == created[::-1]


def test_received_transfers_are_listed_for_the_recipient_only(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    transfer = send(api, load(api, CARD)["id"]).json()
    with client_for(sandbox, BOB_KEY) as bob:
        bob_account = transfer["recipientAccountId"]
        listed = bob.get("/api/asset-transfers", params={"recipientAccountId": bob_account})
        assert [item["id"] for item in listed.json()["items"]] == [transfer["id"]]
        assert bob.get(f"/api/asset-transfers/{transfer['id']}").status_code == 200
    with client_for(sandbox, OTHER_KEY) as other:
        assert other.get(f"/api/asset-transfers/{transfer['id']}").json()["message"] == (
            "ASSET_TRANSFER_NOT_FOUND"
        )


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 400),
        ({"senderAccountId": OTHER_ACCOUNT}, 403),
        ({"recipientAccountId": OTHER_ACCOUNT}, 403),
        ({"senderAccountId": DOC_ACCOUNT, "pageKey": "%%%"}, 400),
    ],
)
def test_listing_transfers_needs_the_callers_own_account(
    api: httpx.Client, params: dict[str, str], status: int
) -> None:
    assert api.get("/api/asset-transfers", params=params).status_code == status
