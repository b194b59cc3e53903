"""Assets and transfers as Centrapay shows them: money as strings of cents, ISO timestamps.

Absent optional fields are left out rather than sent as null, as in the docs' examples.
"""

from __future__ import annotations

from typing import Any

from centrapay_sandbox.models import CATEGORY_MONEY, Asset, Transfer
from centrapay_sandbox.recipients import mask_alias

CURRENCY = "NZD"
EXTERNAL_ID_MASK = "*" * 11
EXTERNAL_ID_VISIBLE = 5


def mask_external_id(external_id: str) -> str:
    """``23403321042`` -> ``***********21042``, as the load answer shows the card number."""
    return EXTERNAL_ID_MASK + external_id[-EXTERNAL_ID_VISIBLE:]


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def asset_view(asset: Asset, *, mask_card: bool = False) -> dict[str, Any]:
    """An asset as ``GET /api/assets/{id}`` shows it; ``mask_card`` for the load answer."""
    liveness = "test" if asset.type.endswith(".test") else "main"
    if asset.category == CATEGORY_MONEY:
        return {
            "id": asset.id,
            "accountId": asset.account_id,
            "category": asset.category,
            "type": asset.type,
            "liveness": liveness,
            "description": asset.description,
            "createdAt": asset.created_at,
            "status": asset.status.value,
            "currency": CURRENCY,
            "balance": str(asset.balance),
            "availableBalance": str(asset.balance),
        }
    external_id = asset.external_id
    if mask_card and external_id is not None:
        external_id = mask_external_id(external_id)
    return _present(
        {
            "id": asset.id,
            "accountId": asset.account_id,
            "category": asset.category,
            "type": asset.type,
            "liveness": liveness,
            "issuer": asset.issuer,
            "externalId": external_id,
            "description": asset.description,
            "productCode": asset.product_code,
            "currency": CURRENCY,
            "initialBalance": str(asset.initial_balance),
            "balance": str(asset.balance),
            "availableBalance": str(asset.balance),
            "balanceUpdatedAt": asset.balance_updated_at,
            "expiresAt": asset.expires_at,
            "createdAt": asset.created_at,
            "status": asset.status.value,
        }
    )


def transfer_view(transfer: Transfer, *, mask_recipient: bool = False) -> dict[str, Any]:
    """A transfer as ``GET /api/asset-transfers/{id}`` shows it; listings mask the recipient."""
    alias = mask_alias(transfer.recipient_alias) if mask_recipient else transfer.recipient_alias
    return _present(
        {
            "id": transfer.id,
            "status": transfer.status.value,
            "value": str(transfer.value),
            "assetId": transfer.asset_id,
            "assetType": transfer.asset_type,
            "description": transfer.description,
            "message": transfer.message,
            "senderName": transfer.sender_name,
            "lastSentTo": transfer.last_sent_to,
            "recipientId": transfer.recipient_id,
            "senderAccountId": transfer.sender_account_id,
            "recipientAccountId": transfer.recipient_account_id,
            "recipientAlias": alias,
            "createdAt": transfer.created_at,
            "updatedAt": transfer.updated_at,
        }
    )


def load_transfer_view(transfer: Transfer) -> dict[str, Any]:
    """The ``assetTransfer`` part of a load-and-transfer answer: recipient masked."""
    return _present(
        {
            "id": transfer.id,
            "status": transfer.status.value,
            "recipientAlias": mask_alias(transfer.recipient_alias),
            "message": transfer.message,
            "senderName": transfer.sender_name,
        }
    )
