"""The Centrapay API routes (``/api/...``): parse, call the store, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from centrapay_sandbox.deps import AccountDep, SandboxDep
from centrapay_sandbox.schemas import CreateTransferRequest, LoadAssetRequest
from centrapay_sandbox.views import (
    asset_view,
    load_transfer_view,
    transfer_view,
)

router = APIRouter(prefix="/api")

PageKey = Annotated[str | None, Query(alias="pageKey")]


@router.post("/external-assets")
async def load_external_asset(
    body: LoadAssetRequest, sandbox: SandboxDep, account_id: AccountDep
) -> JSONResponse:
    """Load a giftcard, and transfer it when ``assetTransfer`` is given."""
    asset, transfer = sandbox.store.load(account_id=account_id, request=body)
    view = asset_view(asset, mask_card=True)
    if transfer is not None:
        sandbox.lifecycle.started(transfer)
        view["assetTransfer"] = load_transfer_view(transfer)
    return JSONResponse(view)


@router.get("/assets/{asset_id}")
async def get_asset(asset_id: str, sandbox: SandboxDep, account_id: AccountDep) -> JSONResponse:
    """One of the caller's assets."""
    asset = sandbox.store.get_asset(account_id=account_id, asset_id=asset_id)
    return JSONResponse(asset_view(asset))


@router.get("/accounts/{owner_id}/assets")
async def list_account_assets(
    owner_id: str,
    sandbox: SandboxDep,
    account_id: AccountDep,
    page_key: PageKey = None,
    external_id: Annotated[str | None, Query(alias="externalId")] = None,
) -> JSONResponse:
    """A page of the caller's assets, archived ones left out; ``externalId``: that card's."""
    page = sandbox.store.list_assets(
        account_id=account_id, owner_id=owner_id, page_key=page_key, external_id=external_id
    )
    return JSONResponse(_page([asset_view(asset) for asset in page.items], page.next_page_key))


@router.post("/assets/{asset_id}/archive")
async def archive_asset(asset_id: str, sandbox: SandboxDep, account_id: AccountDep) -> JSONResponse:
    """Archive one of the caller's giftcards."""
    asset = sandbox.store.archive(account_id=account_id, asset_id=asset_id)
    return JSONResponse(asset_view(asset))


@router.post("/asset-transfers")
async def create_asset_transfer(
    body: CreateTransferRequest, sandbox: SandboxDep, account_id: AccountDep
) -> JSONResponse:
    """Transfer a giftcard, or an amount of the wallet, to a recipient."""
    transfer = sandbox.store.transfer(account_id=account_id, request=body)
    sandbox.lifecycle.started(transfer)
    return JSONResponse(transfer_view(transfer))


@router.get("/asset-transfers/{transfer_id}")
async def get_asset_transfer(
    transfer_id: str, sandbox: SandboxDep, account_id: AccountDep
) -> JSONResponse:
    """A transfer the caller sent or received."""
    transfer = sandbox.store.get_transfer(account_id=account_id, transfer_id=transfer_id)
    return JSONResponse(transfer_view(transfer))


@router.post("/asset-transfers/{transfer_id}/cancel")
async def cancel_asset_transfer(
    transfer_id: str, sandbox: SandboxDep, account_id: AccountDep
) -> JSONResponse:
    """Cancel a ``created`` or ``sent`` transfer the caller sent; the card is theirs again."""
    transfer = sandbox.store.cancel_transfer(account_id=account_id, transfer_id=transfer_id)
    sandbox.lifecycle.notify(transfer)
    return JSONResponse(transfer_view(transfer, mask_recipient=True))


@router.get("/asset-transfers")
async def list_asset_transfers(
    sandbox: SandboxDep,
    account_id: AccountDep,
    sent_by: Annotated[str | None, Query(alias="senderAccountId")] = None,
    received_by: Annotated[str | None, Query(alias="recipientAccountId")] = None,
    page_key: PageKey = None,
) -> JSONResponse:
    """A page of the transfers the caller sent (``senderAccountId``) or received."""
    page = sandbox.store.list_transfers(
        account_id=account_id, sent_by=sent_by, received_by=received_by, page_key=page_key
    )
    items = [transfer_view(transfer, mask_recipient=True) for transfer in page.items]
    return JSONResponse(_page(items, page.next_page_key))


@router.post("/me/resolve-claimable-assets")
async def resolve_claimable_assets(sandbox: SandboxDep, account_id: AccountDep) -> JSONResponse:
    """Claim the transfers waiting for the caller's account."""
    for transfer in sandbox.store.resolve_claimable(account_id=account_id):
        sandbox.lifecycle.notify(transfer)
    return JSONResponse({})


def _page(items: list[dict[str, object]], next_page_key: str | None) -> dict[str, object]:
    body: dict[str, object] = {"items": items}
    if next_page_key is not None:
        body["nextPageKey"] = next_page_key
    return body
