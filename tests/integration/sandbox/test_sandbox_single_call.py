"""Load and transfer in one call (``assetTransfer`` in ``POST /api/external-assets``): the
transfer in the answer, its webhook, and the 400 of an account where the single call is
not enabled (``SANDBOX_SINGLE_CALL``, ``singleCall``)."""

from __future__ import annotations

import httpx

from centrapay_sandbox import SandboxSettings, running_sandbox
from tests.integration.sandbox.sandbox_helpers import (
    BOB_PHONE,
    DOC_ACCOUNT,
    WebhookReceiver,
    advance,
    load_body,
)

CARD = "63000000017"
ASSETS = f"/api/accounts/{DOC_ACCOUNT}/assets"
NOT_ALLOWED = {
    "statusCode": 400,
    "error": "Bad Request",
    "message": '"assetTransfer" is not allowed',
}


def load_and_send(client: httpx.Client, **transfer: str) -> httpx.Response:
    body = load_body(CARD, assetTransfer={"recipientAlias": BOB_PHONE, **transfer})
    return client.post("/api/external-assets", json=body)


def test_load_and_transfer_answers_the_asset_with_its_transfers_id_and_status(
    api: httpx.Client,
) -> None:
    answer = load_and_send(api, message="Kia ora").json()
    transfer = answer["assetTransfer"]
    assert transfer["status"] == "created"
    looked_up = api.get(f"/api/asset-transfers/{transfer['id']}").json()
    assert (looked_up["assetId"], looked_up["message"]) == (answer["id"], "Kia ora")
    assert api.get(f"/api/assets/{answer['id']}").json()["status"] == "transferred"


def test_a_notify_url_in_asset_transfer_gets_the_transfers_webhooks(
    api: httpx.Client, control: httpx.Client, webhooks: WebhookReceiver
) -> None:
    answer = load_and_send(api, notifyUrl=webhooks.url).json()
    transfer_id = answer["assetTransfer"]["id"]
    created = webhooks.wait_for(transfer_id, "created")
    assert created["assetId"] == answer["id"]
    advance(control, 61)
    webhooks.wait_for(transfer_id, "claimed")
    assert webhooks.statuses(transfer_id) == ["created", "sent", "claimed"]


def test_with_the_single_call_off_asset_transfer_is_a_400_and_nothing_is_applied(
    api: httpx.Client, control: httpx.Client
) -> None:
    changed = control.patch("/_sandbox/config", json={"singleCall": False}).json()
    assert changed["singleCall"] is False
    response = load_and_send(api)
    assert (response.status_code, response.json()) == (400, NOT_ALLOWED)
    assert control.get(f"/_sandbox/ledger/cards/{CARD}").json()["loads"] == 0
    assert api.get(ASSETS, params={"externalId": CARD}).json()["items"] == []
    listed = api.get("/api/asset-transfers", params={"senderAccountId": DOC_ACCOUNT})
    assert listed.json()["items"] == []


def test_with_the_single_call_off_a_plain_load_still_works(
    api: httpx.Client, control: httpx.Client
) -> None:
    control.patch("/_sandbox/config", json={"singleCall": False}).raise_for_status()
    response = api.post("/api/external-assets", json=load_body(CARD))
    assert response.status_code == 200
    assert "assetTransfer" not in response.json()


def test_the_single_call_setting_is_where_the_sandbox_starts() -> None:
    settings = SandboxSettings(_env_file=None, single_call=False, api_keys=[f"1234:{DOC_ACCOUNT}"])
    with (
        running_sandbox(settings) as sandbox,
        httpx.Client(base_url=sandbox.base_url, headers={"x-api-key": "1234"}) as client,
    ):
        assert client.get("/_sandbox/config").json()["singleCall"] is False
        response = load_and_send(client)
        assert (response.status_code, response.json()) == (400, NOT_ALLOWED)
        client.patch("/_sandbox/config", json={"singleCall": True}).raise_for_status()
        assert load_and_send(client).status_code == 200
