"""Cancelling a transfer (``POST /api/asset-transfers/{id}/cancel``): by its sender, while
``created`` or ``sent``; the card is the sender's again, active, and may be sent anew; in
any other status 403 ``INVALID_ASSET_TRANSFER_STATUS``; a webhook either way it moves."""

from __future__ import annotations

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from tests.integration.sandbox.sandbox_helpers import (
    BOB_KEY,
    DOC_ACCOUNT,
    NEVER_CLAIMS_PHONE,
    OTHER_KEY,
    WebhookReceiver,
    advance,
    client_for,
    load,
    send,
)

CARD = "64000000017"
ACCOUNT = f"/_sandbox/accounts/{DOC_ACCOUNT}"
SENT_AFTER_SECONDS = 6
CLAIMED_AFTER_SECONDS = 61
TWO_WEEKS_AND_A_BIT = 14 * 24 * 3600 + 3600


def cancel(client: httpx.Client, transfer_id: str) -> httpx.Response:
    return client.post(f"/api/asset-transfers/{transfer_id}/cancel")


def refused(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["message"]


@pytest.mark.parametrize("wait", [0, SENT_AFTER_SECONDS], ids=["created", "sent"])
def test_a_pending_transfer_is_cancelled_and_the_card_is_the_senders_again(
    api: httpx.Client, control: httpx.Client, wait: float
) -> None:
    asset = load(api, CARD)
    transfer = send(api, asset["id"], message="Happy birthday").json()
    if wait:
        advance(control, wait)
    response = cancel(api, transfer["id"])
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["id"], cancelled["status"]) == (transfer["id"], "cancelled")
    assert (cancelled["assetId"], cancelled["senderAccountId"]) == (asset["id"], DOC_ACCOUNT)
    assert cancelled["recipientAlias"] == "+64*****1234"
    looked_up = api.get(f"/api/assets/{asset['id']}").json()
    assert (looked_up["accountId"], looked_up["status"]) == (DOC_ACCOUNT, "active")
    assert api.get(f"/api/asset-transfers/{transfer['id']}").json()["status"] == "cancelled"


def test_a_cancelled_card_can_be_sent_again_and_is_not_claimed_by_the_first_recipient(
    api: httpx.Client, control: httpx.Client
) -> None:
    asset = load(api, CARD)
    first = send(api, asset["id"]).json()
    cancel(api, first["id"]).raise_for_status()
    advance(control, CLAIMED_AFTER_SECONDS)
    assert api.get(f"/api/asset-transfers/{first['id']}").json()["status"] == "cancelled"
    assert api.get(f"/api/assets/{asset['id']}").json()["status"] == "active"
    again = send(api, asset["id"])
    assert again.status_code == 200, again.text
    assert control.get(f"/_sandbox/ledger/cards/{CARD}").json()["transfers"] == 2


def test_cancelling_sends_the_webhook(api: httpx.Client, webhooks: WebhookReceiver) -> None:
    transfer = send(api, load(api, CARD)["id"], notifyUrl=webhooks.url).json()
    cancel(api, transfer["id"]).raise_for_status()
    webhooks.wait_for(transfer["id"], "cancelled")
    assert webhooks.statuses(transfer["id"]) == ["created", "cancelled"]


def test_a_claimed_transfer_cannot_be_cancelled(api: httpx.Client, control: httpx.Client) -> None:
    transfer = send(api, load(api, CARD)["id"]).json()
    advance(control, CLAIMED_AFTER_SECONDS)
    assert refused(cancel(api, transfer["id"])) == (403, "INVALID_ASSET_TRANSFER_STATUS")


def test_a_returned_transfer_cannot_be_cancelled(api: httpx.Client, control: httpx.Client) -> None:
    transfer = send(api, load(api, CARD)["id"], alias=NEVER_CLAIMS_PHONE).json()
    advance(control, TWO_WEEKS_AND_A_BIT)
    assert api.get(f"/api/asset-transfers/{transfer['id']}").json()["status"] == "returned"
    assert refused(cancel(api, transfer["id"])) == (403, "INVALID_ASSET_TRANSFER_STATUS")


def test_a_cancelled_transfer_cannot_be_cancelled_again(api: httpx.Client) -> None:
    transfer = send(api, load(api, CARD)["id"]).json()
    cancel(api, transfer["id"]).raise_for_status()
    assert refused(cancel(api, transfer["id"])) == (403, "INVALID_ASSET_TRANSFER_STATUS")


def test_only_the_sender_may_cancel(sandbox: SandboxHandle, api: httpx.Client) -> None:
    transfer = send(api, load(api, CARD)["id"]).json()
    with client_for(sandbox, BOB_KEY) as bob:
        assert refused(cancel(bob, transfer["id"])) == (403, "ACCOUNT_ACCESS_DENIED")
    with client_for(sandbox, OTHER_KEY) as other:
        assert refused(cancel(other, transfer["id"])) == (403, "ASSET_TRANSFER_NOT_FOUND")
    assert refused(cancel(api, "NoSuchTransfer")) == (403, "ASSET_TRANSFER_NOT_FOUND")
    assert api.get(f"/api/asset-transfers/{transfer['id']}").json()["status"] == "created"


def test_a_cancelled_wallet_transfer_gives_the_money_back(
    api: httpx.Client, control: httpx.Client
) -> None:
    wallet = control.patch(ACCOUNT, json={"walletBalance": "10000"}).json()
    transfer = send(api, wallet["walletId"], value="2500").json()
    assert control.get(ACCOUNT).json()["walletBalance"] == "7500"
    cancel(api, transfer["id"]).raise_for_status()
    assert control.get(ACCOUNT).json()["walletBalance"] == "10000"
