"""Listing order (``SANDBOX_LIST_ORDER``, ``listOrder``): newest or oldest first for the
asset listing and both transfer listings, with page keys that stay right as items are
added during a walk."""

from __future__ import annotations

import httpx
import pytest

from centrapay_sandbox import SandboxHandle, SandboxSettings, running_sandbox
from centrapay_sandbox.recipients import recipient_account_id
from tests.integration.sandbox.sandbox_helpers import (
    BOB_KEY,
    BOB_PHONE,
    DOC_ACCOUNT,
    PAGE_SIZE,
    client_for,
    load,
    send,
    walk_pages,
)

ASSETS = f"/api/accounts/{DOC_ACCOUNT}/assets"
SENT = {"senderAccountId": DOC_ACCOUNT}
ORDERS = ["newest", "oldest"]


def set_order(control: httpx.Client, order: str) -> None:
    response = control.patch("/_sandbox/config", json={"listOrder": order})
    assert response.json()["listOrder"] == order


def in_order(ids: list[str], order: str) -> list[str]:
    """``ids`` (given oldest first) as a listing in ``order`` serves them."""
    return ids[::-1] if order == "newest" else ids


def ids_of(pages: list[list[dict[str, str]]]) -> list[str]:
    return [item["id"] for page in pages for item in page]


def giftcard_ids(pages: list[list[dict[str, str]]]) -> list[str]:
    return [item["id"] for page in pages for item in page if item["category"] == "giftcard"]


def sent_transfers(api: httpx.Client, count: int, *, first: int = 0) -> list[str]:
    """Load and send ``count`` cards; the transfer ids, oldest first."""
    return [
        send(api, load(api, f"6100000{n:04d}")["id"]).json()["id"]
        for n in range(first, first + count)
    ]


@pytest.mark.parametrize("order", ORDERS)
def test_an_accounts_assets_are_listed_in_the_configured_order(
    api: httpx.Client, control: httpx.Client, order: str
) -> None:
    set_order(control, order)
    loaded = [load(api, f"6100000{n:04d}")["id"] for n in range(7)]
    pages = walk_pages(api, ASSETS)
    assert [len(page) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 2]
    assert giftcard_ids(pages) == in_order(loaded, order)


@pytest.mark.parametrize("order", ORDERS)
def test_sent_transfers_are_listed_in_the_configured_order(
    api: httpx.Client, control: httpx.Client, order: str
) -> None:
    set_order(control, order)
    created = sent_transfers(api, 7)
    pages = walk_pages(api, "/api/asset-transfers", **SENT)
    assert [len(page) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 1]
    assert ids_of(pages) == in_order(created, order)


@pytest.mark.parametrize("order", ORDERS)
def test_received_transfers_are_listed_in_the_configured_order(
    sandbox: SandboxHandle, api: httpx.Client, control: httpx.Client, order: str
) -> None:
    set_order(control, order)
    created = sent_transfers(api, 5)
    received = {"recipientAccountId": recipient_account_id(BOB_PHONE)}
    with client_for(sandbox, BOB_KEY) as bob:
        pages = walk_pages(bob, "/api/asset-transfers", **received)
    assert ids_of(pages) == in_order(created, order)


def walk_while_adding(
    api: httpx.Client, control: httpx.Client, order: str
) -> tuple[list[str], list[str], list[str]]:
    """In ``order``, send 5 cards, read the first page of sent transfers, send 4 more, and
    walk on from the first page's key: the ids sent before, those added, those walked."""
    set_order(control, order)
    before = sent_transfers(api, 5)
    first = api.get("/api/asset-transfers", params=SENT).json()
    added = sent_transfers(api, 4, first=5)
    rest = walk_pages(api, "/api/asset-transfers", **SENT, pageKey=first["nextPageKey"])
    return before, added, [item["id"] for item in first["items"]] + ids_of(rest)


def test_newest_first_a_walk_does_not_serve_what_was_added_after_its_first_page(
    api: httpx.Client, control: httpx.Client
) -> None:
    before, added, walked = walk_while_adding(api, control, "newest")
    assert walked == before[::-1]
    assert not set(added) & set(walked)
    assert ids_of(walk_pages(api, "/api/asset-transfers", **SENT))[:4] == added[::-1]


def test_oldest_first_what_is_added_during_a_walk_comes_at_its_end(
    api: httpx.Client, control: httpx.Client
) -> None:
    before, added, walked = walk_while_adding(api, control, "oldest")
    assert walked == before + added


def test_a_walk_keeps_the_order_it_started_in_when_the_setting_changes(
    api: httpx.Client, control: httpx.Client
) -> None:
    set_order(control, "oldest")
    created = sent_transfers(api, 7)
    first = api.get("/api/asset-transfers", params=SENT).json()
    set_order(control, "newest")
    rest = walk_pages(api, "/api/asset-transfers", **SENT, pageKey=first["nextPageKey"])
    assert [item["id"] for item in first["items"]] + ids_of(rest) == created


@pytest.mark.parametrize("order", ORDERS)
def test_the_list_order_setting_is_where_the_sandbox_starts_and_resets_to(order: str) -> None:
    settings = SandboxSettings(_env_file=None, list_order=order, page_size=2)  # type: ignore[arg-type]
    with running_sandbox(settings) as sandbox:
        control = f"{sandbox.base_url}/_sandbox"
        assert httpx.get(control + "/config").json()["listOrder"] == order
        other = "oldest" if order == "newest" else "newest"
        httpx.patch(control + "/config", json={"listOrder": other}).raise_for_status()
        httpx.post(control + "/reset").raise_for_status()
        assert httpx.get(control + "/config").json()["listOrder"] == order


def test_an_unknown_list_order_is_a_400(control: httpx.Client) -> None:
    response = control.patch("/_sandbox/config", json={"listOrder": "random"})
    assert response.status_code == 400
    assert control.get("/_sandbox/config").json()["listOrder"] == "newest"
