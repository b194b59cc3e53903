"""Centrapay's facts as the sandbox enforces them, copied from the API documents.

Kept apart from the distributor's own constants on purpose: a mistake there must be
caught by the fake, not copied into it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

CATEGORY_GIFTCARD = "giftcard"
Category = Literal["giftcard"]
"""The asset category ``POST /api/external-assets`` accepts."""
AssetType = Literal["epay.nzd.main", "epay.nzd.test"]
"""The giftcard asset types ``POST /api/external-assets`` accepts."""
ASSET_TYPES: tuple[str, ...] = get_args(AssetType)
DEFAULT_ASSET_TYPE = "epay.nzd.main"
Issuer = Literal["ezipay"]
"""The issuers ``POST /api/external-assets`` accepts."""
ISSUERS: tuple[str, ...] = get_args(Issuer)

MESSAGE_MAX_CHARS = 100
"""An asset transfer's ``message``: "100 character limit"."""
SENDER_NAME_MAX_CHARS = 30
"""An asset transfer's ``senderName``."""
DESCRIPTION_MAX_CHARS = 200
"""An asset transfer's ``description``."""

NZ_COUNTRY_CODE = 64
"""Recipient phones are New Zealand numbers in E.164 form."""

PHONE_VISIBLE_DIGITS = 4
PHONE_MASK = "*" * 5
"""``+64221231234`` is shown as ``+64*****1234``."""


class TransferStatus(StrEnum):
    """An asset transfer's lifecycle."""

    CREATED = "created"
    SENT = "sent"
    CLAIMED = "claimed"
    EXPIRED = "expired"
    RETURNED = "returned"
    CANCELLED = "cancelled"
