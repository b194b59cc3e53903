"""Looking a card up without scanning: the ``externalId`` filter of the asset listing, and
``GET /api/assets/{id}``, each showing the status a card has for its sender while its
transfer is pending and after it is claimed."""

from __future__ import annotations

import time

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from tests.integration.sandbox.sandbox_helpers import (
    BOB_KEY,
    BOB_PHONE,
    DOC_ACCOUNT,
    OTHER_KEY,
    advance,
    client_for,
    load,
    load_body,
    send,
)

ASSETS = f"/api/accounts/{DOC_ACCOUNT}/assets"
CARD = "62000000017"
CLAIMED_AFTER_SECONDS = 61
HISTORY = 20_000
LOOKUPS = 200
LOOKUPS_MAX_SECONDS = 10.0  # generous: 50 ms a lookup on a busy 2-core machine


def by_card(client: httpx.Client, card: str) -> list[dict[str, str]]:
    response = client.get(ASSETS, params={"externalId": card})
    assert response.status_code == 200, response.text
    assert "nextPageKey" not in response.json()
    return list(response.json()["items"])


def test_the_external_id_filter_gives_the_one_asset_of_that_card(api: httpx.Client) -> None:
    asset = load(api, CARD)
    load(api, "62000000018")
    [found] = by_card(api, CARD)
    assert (found["id"], found["externalId"], found["status"]) == (asset["id"], CARD, "active")


@pytest.mark.parametrize("card", ["6200000001", "620000000170", "62000000019", ""])
def test_the_external_id_filter_matches_the_card_number_exactly(
    api: httpx.Client, card: str
) -> None:
    load(api, CARD)
    assert by_card(api, card) == []


def test_the_external_id_filter_leaves_out_an_archived_card(api: httpx.Client) -> None:
    asset = load(api, CARD)
    api.post(f"/api/assets/{asset['id']}/archive").raise_for_status()
    assert by_card(api, CARD) == []


def test_the_external_id_filter_does_not_show_another_accounts_card(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    with client_for(sandbox, OTHER_KEY) as other:
        body = load_body(CARD) | {"accountId": "OtherAccount0000000001"}
        other.post("/api/external-assets", json=body).raise_for_status()
    assert by_card(api, CARD) == []


def test_a_card_in_a_pending_transfer_is_the_senders_and_shows_transferred(
    api: httpx.Client,
) -> None:
    asset = load(api, CARD)
    send(api, asset["id"]).raise_for_status()
    [listed] = by_card(api, CARD)
    looked_up = api.get(f"/api/assets/{asset['id']}").json()
    for view in (listed, looked_up):
        assert (view["accountId"], view["status"]) == (DOC_ACCOUNT, "transferred")


def test_once_claimed_a_card_is_the_recipients_and_the_sender_no_longer_sees_it(
    sandbox: SandboxHandle, api: httpx.Client, control: httpx.Client
) -> None:
    asset = load(api, CARD)
    transfer = send(api, asset["id"]).json()
    advance(control, CLAIMED_AFTER_SECONDS)
    assert api.get(f"/api/asset-transfers/{transfer['id']}").json()["status"] == "claimed"
    assert by_card(api, CARD) == []
    assert asset["id"] not in {item["id"] for item in api.get(ASSETS).json()["items"]}
    gone = api.get(f"/api/assets/{asset['id']}")
    assert (gone.status_code, gone.json()["message"]) == (403, "ASSET_NOT_FOUND")
    with client_for(sandbox, BOB_KEY) as bob:
        bob_assets = f"/api/accounts/{transfer['recipientAccountId']}/assets"
        [held] = bob.get(bob_assets, params={"externalId": CARD}).json()["items"]
    assert (held["id"], held["status"]) == (asset["id"], "active")
    assert transfer["recipientAlias"] == BOB_PHONE


def test_the_external_id_filter_stays_quick_when_the_account_holds_twenty_thousand_cards(
    api: httpx.Client, control: httpx.Client
) -> None:
    history = control.post(
        f"/_sandbox/accounts/{DOC_ACCOUNT}/history",
        json={"transfers": HISTORY, "claimed": False},
    )
    history.raise_for_status()
    asset = load(api, CARD)
    started = time.monotonic()
    for _ in range(LOOKUPS):
        [found] = by_card(api, CARD)
        assert found["id"] == asset["id"]
    assert time.monotonic() - started < LOOKUPS_MAX_SECONDS
    # The unfiltered listing holds them all: they are the sender's until claimed.
    newest = api.get(ASSETS).json()["items"]
    assert [item["status"] for item in newest] == ["active", "transferred", "transferred"]
