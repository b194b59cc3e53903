"""The sandbox's in-memory records: accounts, assets, asset transfers, and listing pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from centrapay_sandbox.catalogue import TransferRule
from centrapay_sandbox.constants import TransferStatus

T = TypeVar("T")

CATEGORY_MONEY = "money"
WALLET_TYPE = "centrapay.nzd.main"


class AssetStatus(StrEnum):
    """``active`` and ``archived`` as documented; ``transferred`` while a transfer is pending."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    TRANSFERRED = "transferred"


@dataclass(kw_only=True)
class Account:
    """A Centrapay account: its NZD wallet and its daily spend quota (in cents)."""

    id: str
    wallet_id: str
    quota_limit: int = 0
    quota_usage: int = 0


@dataclass(kw_only=True)
class Asset:
    """A giftcard loaded into an account, or an account's NZD wallet."""

    id: str
    seq: int
    account_id: str
    category: str
    type: str
    description: str
    balance: int
    created_at: str
    issuer: str | None = None
    external_id: str | None = None
    initial_balance: int = 0
    product_code: str | None = None
    expires_at: str | None = None
    balance_updated_at: str | None = None
    status: AssetStatus = AssetStatus.ACTIVE
    transfer_rule: TransferRule = TransferRule.NONE
    senders: set[str] = field(default_factory=set)


@dataclass(kw_only=True)
class Transfer:
    """An asset transfer and where it stands in its lifecycle."""

    id: str
    seq: int
    status: TransferStatus
    value: int
    asset_id: str
    asset_type: str
    sender_account_id: str
    recipient_alias: str
    recipient_id: str
    recipient_account_id: str
    claims: bool
    created_at: str
    updated_at: str
    description: str | None = None
    message: str | None = None
    sender_name: str | None = None
    notify_url: str | None = None
    last_sent_to: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_page_key`` is None on the last page."""

    items: list[T]
    next_page_key: str | None
