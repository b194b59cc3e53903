"""The curl requests of the seed documents, sent as they are written, get the documented
answers: the same fields, money as strings of cents, cards and phones masked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from centrapay_sandbox.recipients import recipient_account_id
from tests.integration.sandbox.sandbox_helpers import (
    BOB_KEY,
    BOB_PHONE,
    DATA,
    DOC_ACCOUNT,
    DOC_KEY,
    TOKEN_ACCOUNT,
    TOKEN_KEY,
    load,
)

SEEDS = {
    seed["name"]: seed for seed in json.loads((DATA / "seed_requests.json").read_text())["requests"]
}
KEYS = {"1234": DOC_KEY, "<TOKEN>": TOKEN_KEY, "$api_key": DOC_KEY}
UNSENT_TRANSFER_FIELDS = frozenset({"message", "senderName", "lastSentTo"})


def send(
    sandbox: SandboxHandle, name: str, *, ids: dict[str, str] | None = None, key: str | None = None
) -> httpx.Response:
    """Send seed request ``name`` as written, with doc ids swapped for live ones."""
    seed = SEEDS[name]
    path, body = seed["path"], seed["body"]
    for doc_id, live_id in (ids or {}).items():
        path = path.replace(doc_id, live_id)
        body = body.replace(doc_id, live_id) if body is not None else None
    headers = {}
    for header in seed["headers"]:
        header_name, _, value = header.partition(": ")
        headers[header_name] = (
            key if header_name.lower() == "x-api-key" and key else KEYS.get(value, value)
        )
    return httpx.request(
        seed["method"], sandbox.base_url + path, headers=headers, content=body, timeout=5
    )


def documented(name: str) -> dict[str, Any]:
    """The example answer the seed document shows for request ``name``."""
    return dict(SEEDS[name]["documentedResponse"])


def assert_has_fields(
    answer: dict[str, Any], example: dict[str, Any], *, unsent: frozenset[str] = frozenset()
) -> None:
    missing = set(example) - unsent - set(answer)
    assert not missing, f"documented fields missing: {missing}"


def assert_masked_card(masked: str, card_number: str) -> None:
    assert masked.endswith(card_number[-5:])
    assert set(masked[:-5]) == {"*"}


def test_the_external_assets_page_load_answers_as_documented(sandbox: SandboxHandle) -> None:
    name = "load an external asset (external assets page)"
    response = send(sandbox, name)
    assert response.status_code == 200, response.text
    asset = response.json()
    assert_has_fields(asset, documented(name))
    assert asset["accountId"] == TOKEN_ACCOUNT
    assert asset["type"] == "epay.nzd.test"
    assert (asset["initialBalance"], asset["balance"], asset["availableBalance"]) == (
        "7000",
        "6000",
        "6000",
    )
    assert asset["description"] == "$60 Acme Giftcard"
    assert_masked_card(asset["externalId"], "23403321042")


def test_the_discrete_assets_page_load_answers_as_documented(sandbox: SandboxHandle) -> None:
    response = send(sandbox, "load an external asset")
    assert response.status_code == 200, response.text
    asset = response.json()
    assert_has_fields(asset, documented("load an external asset"))
    assert asset["accountId"] == DOC_ACCOUNT
    assert asset["currency"] == "NZD"
    assert_masked_card(asset["externalId"], "23403283262")


def test_load_and_transfer_answers_with_the_transfer_and_its_recipient_masked(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    name = "load and transfer an asset"
    response = send(sandbox, name)
    assert response.status_code == 200, response.text
    asset = response.json()
    assert_has_fields(asset, documented(name))
    order = asset["assetTransfer"]
    assert order["recipientAlias"] == "+64*****1234"
    assert order["message"] == "A message which shows up in the SMS of the receiver"
    assert order["senderName"] == "Human readable name for the sender"
    transfer = api.get(f"/api/asset-transfers/{order['id']}").json()
    assert transfer["assetId"] == asset["id"]


def test_a_transfer_from_a_wallet_takes_the_value_from_its_balance(
    sandbox: SandboxHandle, control: httpx.Client
) -> None:
    account = control.patch(
        f"/_sandbox/accounts/{DOC_ACCOUNT}", json={"walletBalance": "10000"}
    ).json()
    name = "transfer from a wallet"
    response = send(sandbox, name, ids={"sai2Pai7ohgongo": account["walletId"]})
    assert response.status_code == 200, response.text
    transfer = response.json()
    assert_has_fields(transfer, documented(name), unsent=UNSENT_TRANSFER_FIELDS)
    assert (transfer["status"], transfer["value"]) == ("created", "6000")
    assert transfer["recipientAlias"] == "+64221231234"
    assert control.get(f"/_sandbox/accounts/{DOC_ACCOUNT}").json()["walletBalance"] == "4000"


def test_a_discrete_transfer_sends_the_whole_giftcard(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    asset = load(api, "23403283262", pin="1234")
    name = "transfer a discrete asset"
    response = send(sandbox, name, ids={"YGRo6TYYSxH3js7": asset["id"]})
    assert response.status_code == 200, response.text
    transfer = response.json()
    assert_has_fields(transfer, documented(name), unsent=UNSENT_TRANSFER_FIELDS)
    assert (transfer["assetId"], transfer["value"], transfer["assetType"]) == (
        asset["id"],
        "6000",
        "epay.nzd.main",
    )
    assert transfer["description"] == "$60 Acme Giftcard"


def test_looking_up_a_transfer_answers_as_documented(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    asset = load(api, "23403283262", pin="1234")
    created = api.post(
        "/api/asset-transfers", json={"assetId": asset["id"], "recipientAlias": BOB_PHONE}
    ).json()
    name = "look up an asset transfer"
    response = send(sandbox, name, ids={"M7Kn2stAxNa6ri7h": created["id"]})
    assert response.status_code == 200, response.text
    assert_has_fields(response.json(), documented(name), unsent=UNSENT_TRANSFER_FIELDS)
    assert response.json()["senderAccountId"] == DOC_ACCOUNT


def test_resolving_claimable_assets_answers_an_empty_object(sandbox: SandboxHandle) -> None:
    response = send(sandbox, "resolve claimable assets")
    assert response.status_code == 200, response.text
    assert response.json() == documented("resolve claimable assets") == {}


def test_listing_sent_transfers_answers_items_with_the_recipient_masked(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    asset = load(api, "23403283262", pin="1234")
    api.post(
        "/api/asset-transfers",
        json={"assetId": asset["id"], "recipientAlias": BOB_PHONE, "message": "Hi"},
    )
    name = "list sent asset transfers"
    response = send(sandbox, name, ids={"aBc932S9182qwCDqwer": DOC_ACCOUNT})
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert_has_fields(item, documented(name)["items"][0], unsent=frozenset({"senderName"}))
    assert item["recipientAlias"] == "+64*****1234"
    assert item["message"] == "Hi"


def test_listing_received_transfers_shows_them_to_the_recipient(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    asset = load(api, "23403283262", pin="1234")
    api.post("/api/asset-transfers", json={"assetId": asset["id"], "recipientAlias": BOB_PHONE})
    name = "list received asset transfers"
    ids = {"oS3Xom2au3Ooy9aihai": recipient_account_id(BOB_PHONE)}
    response = send(sandbox, name, ids=ids, key=BOB_KEY)
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    unsent = frozenset({"senderName", "message"})
    assert_has_fields(item, documented(name)["items"][0], unsent=unsent)
    assert item["assetId"] == asset["id"]


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("get asset", {"externalId": "23403283262"}),
        ("archive asset", {"status": "archived", "balance": "0"}),
    ],
    ids=["getting-it-shows-the-card-number-unmasked", "archiving-it-leaves-no-balance"],
)
def test_a_request_on_a_loaded_giftcard_answers_the_documented_fields(
    sandbox: SandboxHandle, api: httpx.Client, name: str, shown: dict[str, str]
) -> None:
    asset = load(api, "23403283262", pin="1234")
    response = send(sandbox, name, ids={"L75M3L56N2PtBSt8g7uXLU": asset["id"]})
    assert response.status_code == 200, response.text
    assert_has_fields(response.json(), documented(name))
    assert {field: response.json()[field] for field in shown} == shown


def test_listing_an_accounts_assets_shows_its_wallet_and_giftcards(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    load(api, "23403283262", pin="1234")
    name = "list assets for account"
    response = send(sandbox, name)
    assert response.status_code == 200, response.text
    by_category = {item["category"]: item for item in response.json()["items"]}
    examples = {item["category"]: item for item in documented(name)["items"]}
    assert_has_fields(by_category["giftcard"], examples["giftcard"])
    assert_has_fields(by_category["money"], examples["money"])
    assert by_category["giftcard"]["externalId"] == "23403283262"


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_request_needs_an_api_key(sandbox: SandboxHandle, name: str) -> None:
    seed = SEEDS[name]
    response = httpx.request(seed["method"], sandbox.base_url + seed["path"], content=seed["body"])
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": "Missing authentication",
    }
