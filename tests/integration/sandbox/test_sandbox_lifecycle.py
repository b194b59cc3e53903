"""The transfer lifecycle on the simulated clock: created, sent, claimed; or, for a
recipient who never claims, expired and returned after two weeks; a webhook on each change
and the recipient's details scrubbed once the transfer is resolved."""

from __future__ import annotations

import time

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from tests.integration.sandbox.sandbox_helpers import (
    BOB_KEY,
    BOB_PHONE,
    DOC_ACCOUNT,
    NEVER_CLAIMS_KEY,
    NEVER_CLAIMS_PHONE,
    WebhookReceiver,
    client_for,
    load,
)

CARD = "60000000017"
TWO_WEEKS_AND_A_BIT = 14 * 24 * 3600 + 3600


def advance(control: httpx.Client, seconds: float) -> None:
    control.post("/_sandbox/clock/advance", json={"seconds": seconds}).raise_for_status()


def transfer(api: httpx.Client, alias: str, notify_url: str | None = None) -> dict[str, str]:
    """Load CARD and transfer it to ``alias``; the created transfer."""
    body = {"assetId": load(api, CARD)["id"], "recipientAlias": alias, "message": "Happy birthday"}
    if notify_url is not None:
        body["notifyUrl"] = notify_url
    response = api.post("/api/asset-transfers", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_claimed_transfer_posts_each_status_and_is_scrubbed(
    sandbox: SandboxHandle,
    api: httpx.Client,
    control: httpx.Client,
    webhooks: WebhookReceiver,
) -> None:
    created = transfer(api, BOB_PHONE, webhooks.url)
    webhooks.wait_for(created["id"], "created")
    advance(control, 10)
    sent = webhooks.wait_for(created["id"], "sent")
    assert (sent["lastSentTo"], sent["recipientAlias"]) == (BOB_PHONE, BOB_PHONE)
    assert sent["message"] == "Happy birthday"
    advance(control, 60)
    claimed = webhooks.wait_for(created["id"], "claimed")
    assert webhooks.statuses(created["id"]) == ["created", "sent", "claimed"]
    looked_up = api.get(f"/api/asset-transfers/{created['id']}").json()
    for resolved in (claimed, looked_up):
        assert resolved["recipientAlias"] == "+64*****1234"
        assert "message" not in resolved
        assert "lastSentTo" not in resolved
    with client_for(sandbox, BOB_KEY) as bob:
        asset = bob.get(f"/api/assets/{created['assetId']}").json()
    assert asset["accountId"] == created["recipientAccountId"]


def test_an_unclaimed_transfer_expires_and_returns_to_the_sender(
    api: httpx.Client, control: httpx.Client, webhooks: WebhookReceiver
) -> None:
    created = transfer(api, NEVER_CLAIMS_PHONE, webhooks.url)
    advance(control, 3600)
    assert api.get(f"/api/asset-transfers/{created['id']}").json()["status"] == "sent"
    advance(control, TWO_WEEKS_AND_A_BIT)
    returned = webhooks.wait_for(created["id"], "returned")
    assert webhooks.statuses(created["id"]) == ["created", "sent", "expired", "returned"]
    assert returned["recipientAlias"] == "+64*****9999"
    assert "message" not in returned
    asset = api.get(f"/api/assets/{created['assetId']}").json()
    assert (asset["accountId"], asset["status"]) == (DOC_ACCOUNT, "active")
    assert load(api, CARD)["id"] == created["assetId"]
    again = api.post(
        "/api/asset-transfers", json={"assetId": created["assetId"], "recipientAlias": BOB_PHONE}
    )
    assert again.status_code == 200


def test_a_fast_clock_returns_an_unclaimed_transfer_within_seconds(
    api: httpx.Client, control: httpx.Client, webhooks: WebhookReceiver
) -> None:
    control.patch("/_sandbox/config", json={"timeScale": 1_000_000}).raise_for_status()
    started = time.monotonic()
    created = transfer(api, NEVER_CLAIMS_PHONE, webhooks.url)
    webhooks.wait_for(created["id"], "returned", timeout=10)
    assert time.monotonic() - started < 5
    assert webhooks.statuses(created["id"]) == ["created", "sent", "expired", "returned"]


def test_the_recipient_claims_waiting_transfers_by_resolving_claimable_assets(
    sandbox: SandboxHandle, api: httpx.Client, webhooks: WebhookReceiver
) -> None:
    created = transfer(api, NEVER_CLAIMS_PHONE, webhooks.url)
    with client_for(sandbox, NEVER_CLAIMS_KEY) as recipient:
        assert recipient.post("/api/me/resolve-claimable-assets").json() == {}
        assert recipient.get(f"/api/assets/{created['assetId']}").status_code == 200
    webhooks.wait_for(created["id"], "claimed")


@pytest.mark.parametrize("receiver", ["failing", "unreachable"])
def test_a_failing_webhook_receiver_does_not_stop_the_lifecycle(
    api: httpx.Client,
    control: httpx.Client,
    failing_webhooks: WebhookReceiver,
    receiver: str,
) -> None:
    url = failing_webhooks.url if receiver == "failing" else "http://127.0.0.1:9/hooks"
    created = transfer(api, BOB_PHONE, url)
    advance(control, 3600)
    assert api.get(f"/api/asset-transfers/{created['id']}").json()["status"] == "claimed"
    if receiver == "failing":
        failing_webhooks.wait_for(created["id"], "claimed")
    assert api.get(f"/api/accounts/{DOC_ACCOUNT}/assets").status_code == 200
