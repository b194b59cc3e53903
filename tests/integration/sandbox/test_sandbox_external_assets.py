"""Loading giftcards: strict validation, the catalogue, the magic numbers, and at most one
asset per card however often and however concurrently it is loaded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from centrapay_sandbox import SandboxHandle
from tests.integration.sandbox.sandbox_helpers import (
    DOC_ACCOUNT,
    OTHER_ACCOUNT,
    OTHER_KEY,
    client_for,
    load,
    load_body,
)

CARD = "60000000017"


def forbidden(code: str) -> dict[str, Any]:
    return {"statusCode": 403, "error": "Forbidden", "message": code}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"accountId": None}, "accountId"),
        ({"category": "money"}, "category"),
        ({"type": "epay.aud.main"}, "type"),
        ({"issuer": "acme"}, "issuer"),
        ({"externalId": None}, "externalId"),
        ({"externalId": ""}, "externalId"),
        ({"externalId": 60000000017}, "externalId"),
        ({"pin": 1111}, "pin"),
        ({"colour": "red"}, "colour"),
        ({"assetTransfer": {}}, "assetTransfer.recipientAlias"),
        ({"assetTransfer": {"recipientAlias": "+61412345678"}}, "assetTransfer.recipientAlias"),
        ({"assetTransfer": {"recipientAlias": "021 123 1234"}}, "assetTransfer.recipientAlias"),
        ({"assetTransfer": {"recipientAlias": "bob"}}, "assetTransfer.recipientAlias"),
        (
            {"assetTransfer": {"recipientAlias": "+64221231234", "message": "x" * 101}},
            "assetTransfer.message",
        ),
        (
            {"assetTransfer": {"recipientAlias": "+64221231234", "notifyUrl": "ftp://x/hook"}},
            "assetTransfer.notifyUrl",
        ),
    ],
)
def test_a_malformed_load_is_a_400_naming_the_field(
    api: httpx.Client, control: httpx.Client, change: dict[str, Any], field: str
) -> None:
    body = {key: value for key, value in (load_body(CARD) | change).items() if value is not None}
    response = api.post("/api/external-assets", json=body)
    assert response.status_code == 400
    answer = response.json()
    assert (answer["statusCode"], answer["error"]) == (400, "Bad Request")
    assert answer["message"].startswith(field)
    assert control.get("/_sandbox/ledger").json()["cards"] == {}


@pytest.mark.parametrize("content", [b"{not json", b"[]", b""])
def test_a_body_that_is_not_a_json_object_is_a_400(api: httpx.Client, content: bytes) -> None:
    response = api.post(
        "/api/external-assets", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"


def test_a_message_of_exactly_100_characters_is_accepted(api: httpx.Client) -> None:
    order = {"recipientAlias": "bob@example.com", "message": "x" * 100}
    response = api.post("/api/external-assets", json=load_body(CARD, assetTransfer=order))
    assert response.status_code == 200, response.text
    assert response.json()["assetTransfer"]["recipientAlias"] == "b***@example.com"


@pytest.mark.parametrize(
    ("card_number", "code"),
    [
        ("99010000001", "UNKNOWN_ASSET"),
        ("99020000001", "DUPLICATE_ASSET"),
        ("99030000001", "UNSUPPORTED_ASSET_TYPE"),
        ("99040000001", "DENIED_BY_ASSET_PROVIDER"),
        ("99050000001", "EXPIRED_BY_ASSET_PROVIDER"),
        ("6000-0000-017", "UNKNOWN_ASSET"),
    ],
)
def test_a_magic_card_number_is_refused_with_its_code(
    api: httpx.Client, control: httpx.Client, card_number: str, code: str
) -> None:
    response = api.post("/api/external-assets", json=load_body(card_number))
    assert response.status_code == 403
    assert response.json() == forbidden(code)
    assert control.get(f"/_sandbox/ledger/cards/{card_number}").json()["loads"] == 0


@pytest.mark.parametrize(
    ("card_number", "pin", "code"),
    [
        ("23403321042", "0000", "UNKNOWN_ASSET"),
        ("23403321042", None, "UNKNOWN_ASSET"),
        ("23403000001", "1111", "DENIED_BY_ASSET_PROVIDER"),
        ("23403000002", "1111", "EXPIRED_BY_ASSET_PROVIDER"),
    ],
)
def test_a_catalogue_card_is_refused_for_a_wrong_pin_or_its_state(
    api: httpx.Client, card_number: str, pin: str | None, code: str
) -> None:
    body = load_body(card_number)
    body.pop("pin")
    if pin is not None:
        body["pin"] = pin
    response = api.post("/api/external-assets", json=body)
    assert response.json() == forbidden(code)


def test_a_card_outside_the_catalogue_loads_with_any_pin_and_a_balance_from_its_number(
    api: httpx.Client, control: httpx.Client
) -> None:
    first = load(api, CARD, pin="9876")
    control.post("/_sandbox/reset")
    again = load(api, CARD, pin="")
    assert first["balance"] == again["balance"]
    assert int(first["balance"]) % 1000 == 0
    assert first["description"] == f"${int(first['balance']) // 100} Sandbox Giftcard"


def test_loading_a_card_the_account_holds_gives_the_same_asset_and_counts_a_repeat(
    api: httpx.Client, control: httpx.Client
) -> None:
    first = load(api, CARD)
    again = load(api, CARD)
    assert again["id"] == first["id"]
    counts = control.get(f"/_sandbox/ledger/cards/{CARD}").json()
    assert (counts["loads"], counts["repeatLoads"]) == (1, 1)


def test_loading_a_card_another_account_holds_is_a_duplicate(
    sandbox: SandboxHandle, api: httpx.Client
) -> None:
    load(api, CARD)
    with client_for(sandbox, OTHER_KEY) as other:
        response = other.post(
            "/api/external-assets", json=load_body(CARD) | {"accountId": OTHER_ACCOUNT}
        )
    assert response.json() == forbidden("DUPLICATE_ASSET")


def test_loading_into_an_account_that_is_not_the_keys_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/external-assets", json=load_body(CARD) | {"accountId": OTHER_ACCOUNT})
    assert response.json() == forbidden("ACCOUNT_ACCESS_DENIED")


def test_concurrent_loads_of_one_card_create_exactly_one_asset(
    sandbox: SandboxHandle, control: httpx.Client
) -> None:
    def attempt(_: int) -> str:
        with client_for(sandbox) as client:
            return str(load(client, CARD)["id"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = set(pool.map(attempt, range(32)))
    assert len(ids) == 1
    counts = control.get(f"/_sandbox/ledger/cards/{CARD}").json()
    assert (counts["loads"], counts["repeatLoads"]) == (1, 31)


@pytest.mark.parametrize("header", ["X-Api-Key", "x-api-key", "X-API-KEY"])
def test_the_api_key_header_name_is_case_insensitive(sandbox: SandboxHandle, header: str) -> None:
    response = httpx.get(
        f"{sandbox.base_url}/api/accounts/{DOC_ACCOUNT}/assets", headers={header: "1234"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": ""}])
def test_a_missing_or_unknown_api_key_is_a_401(
    sandbox: SandboxHandle, headers: dict[str, str]
) -> None:
    response = httpx.post(
        f"{sandbox.base_url}/api/external-assets", json=load_body(CARD), headers=headers
    )
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": "Missing authentication",
    }
