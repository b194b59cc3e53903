"""Getting, listing (page by page, archived ones left out) and archiving assets; each
account sees only its own."""

from __future__ import annotations

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from tests.integration.sandbox.sandbox_helpers import (
    DOC_ACCOUNT,
    OTHER_ACCOUNT,
    OTHER_KEY,
    PAGE_SIZE,
    client_for,
    load,
    walk_pages,
)

ASSETS = f"/api/accounts/{DOC_ACCOUNT}/assets"


def test_an_accounts_assets_come_page_by_page_until_no_next_page_key(api: httpx.Client) -> None:
    loaded = {load(api, f"6000000{n:04d}")["id"] for n in range(7)}
    pages = walk_pages(api, ASSETS)
    assert [len(page) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 2]
    ids = [item["id"] for page in pages for item in page]
    assert len(ids) == len(set(ids)) == 8
    assert loaded < set(ids)


def test_the_listing_leaves_out_archived_assets_and_shows_pending_transfers_as_transferred(
    api: httpx.Client,
) -> None:
    kept = load(api, "60000000001")
    archived = load(api, "60000000002")
    sent = load(api, "60000000003")
    api.post(f"/api/assets/{archived['id']}/archive").raise_for_status()
    api.post(
        "/api/asset-transfers", json={"assetId": sent["id"], "recipientAlias": "+64221231234"}
    ).raise_for_status()
    giftcards = {
        item["id"]: item["status"]
        for item in api.get(ASSETS).json()["items"]
        if item["category"] == "giftcard"
    }
    assert giftcards == {kept["id"]: "active", sent["id"]: "transferred"}


def test_a_page_key_that_is_not_the_sandboxs_is_a_400(api: httpx.Client) -> None:
    response = api.get(ASSETS, params={"pageKey": "not-a-key!"})
    assert response.status_code == 400
    assert response.json()["message"] == "pageKey is invalid"


def test_another_accounts_assets_cannot_be_listed(api: httpx.Client) -> None:
    response = api.get(f"/api/accounts/{OTHER_ACCOUNT}/assets")
    assert response.json() == {
        "statusCode": 403,
        "error": "Forbidden",
        "message": "ACCOUNT_ACCESS_DENIED",
    }


@pytest.mark.parametrize("action", ["get", "archive"])
def test_another_accounts_asset_cannot_be_seen_or_archived(
    sandbox: SandboxHandle, api: httpx.Client, action: str
) -> None:
    asset = load(api, "60000000001")
    with client_for(sandbox, OTHER_KEY) as other:
        if action == "get":
            response = other.get(f"/api/assets/{asset['id']}")
        else:
            response = other.post(f"/api/assets/{asset['id']}/archive")
    assert response.status_code == 403
    assert response.json()["message"] == "ASSET_NOT_FOUND"


def test_an_unknown_asset_id_is_not_found(api: httpx.Client) -> None:
    assert api.get("/api/assets/NoSuchAsset").json()["message"] == "ASSET_NOT_FOUND"


def test_a_wallet_cannot_be_archived(api: httpx.Client, control: httpx.Client) -> None:
    wallet_id = control.get(f"/_sandbox/accounts/{DOC_ACCOUNT}").json()["walletId"]
    response = api.post(f"/api/assets/{wallet_id}/archive")
    assert response.json()["message"] == "UNSUPPORTED_ASSET_TYPE"


def test_an_archived_card_may_be_loaded_again_as_a_new_asset(
    api: httpx.Client, control: httpx.Client
) -> None:
    first = load(api, "60000000001")
    archived = api.post(f"/api/assets/{first['id']}/archive").json()
    assert (
        api.get(f"/api/assets/{first['id']}").json()["status"] == archived["status"] == "archived"
    )
    again = load(api, "60000000001")
    assert again["id"] != first["id"]
    assert control.get("/_sandbox/ledger/cards/60000000001").json()["loads"] == 2
