"""What the store holds: accounts, assets and transfers by id, and the indexes over them.

The indexes make every lookup the API offers constant-cost or a bisection: the asset of a
card number, an account's holdings, the transfers an account sent or received. They are
changed only through the methods here, so they never disagree with the records.
"""

from __future__ import annotations

import random

from centrapay_sandbox.clock import SimClock, iso
from centrapay_sandbox.models import (
    CATEGORY_MONEY,
    WALLET_TYPE,
    Account,
    Asset,
    AssetStatus,
    Transfer,
)
from centrapay_sandbox.paging import Index, insert, remove
from centrapay_sandbox.recipients import ID_ALPHABET

ASSET_ID_CHARS = 22
TRANSFER_ID_CHARS = 16
WALLET_DESCRIPTION = "NZD"


def new_id(length: int) -> str:
    """A random id in Centrapay's style (letters and digits)."""
    return "".join(random.choices(ID_ALPHABET, k=length))


class Records:
    """The sandbox's records and indexes; the caller holds the store's lock."""

    def __init__(self, *, clock: SimClock) -> None:
        self.clock = clock
        self.seq = 0
        self.accounts: dict[str, Account] = {}
        self.assets: dict[str, Asset] = {}
        self.transfers: dict[str, Transfer] = {}
        self.by_card: dict[str, str] = {}
        """Card number -> the one asset of that card that is not archived."""
        self.holdings: dict[str, Index] = {}
        self.sent: dict[str, Index] = {}
        self.received: dict[str, Index] = {}

    def clear(self) -> None:
        """Forget everything."""
        self.seq = 0
        for records in (
            self.accounts,
            self.assets,
            self.transfers,
            self.by_card,
            self.holdings,
            self.sent,
            self.received,
        ):
            records.clear()

    def next_seq(self) -> int:
        """The next sequence number: every asset and transfer gets one, in creation order."""
        self.seq += 1
        return self.seq

    def open_account(self, account_id: str) -> Account:
        """The account, opened with an empty wallet if it is new."""
        account = self.accounts.get(account_id)
        if account is not None:
            return account
        wallet = Asset(
            id=new_id(ASSET_ID_CHARS),
            seq=self.next_seq(),
            account_id=account_id,
            category=CATEGORY_MONEY,
            type=WALLET_TYPE,
            description=WALLET_DESCRIPTION,
            balance=0,
            created_at=iso(self.clock.now()),
        )
        self.add_asset(wallet)
        account = Account(id=account_id, wallet_id=wallet.id)
        self.accounts[account_id] = account
        return account

    def add_asset(self, asset: Asset) -> None:
        """Record a new asset in its owner's holdings (and under its card number)."""
        self.assets[asset.id] = asset
        if asset.external_id is not None:
            self.by_card[asset.external_id] = asset.id
        insert(self.holdings.setdefault(asset.account_id, []), asset.seq, asset.id)

    def card_asset(self, card_number: str) -> Asset | None:
        """The asset of this card that is not archived, whoever holds it."""
        asset_id = self.by_card.get(card_number)
        return None if asset_id is None else self.assets[asset_id]

    def archived(self, asset: Asset) -> None:
        """The asset was archived: its card number is free to be loaded anew."""
        asset.status = AssetStatus.ARCHIVED
        if asset.external_id is not None and self.by_card.get(asset.external_id) == asset.id:
            del self.by_card[asset.external_id]

    def move_asset(self, asset: Asset, to_account_id: str) -> None:
        """Give the asset to another account."""
        if asset.account_id == to_account_id:
            return
        remove(self.holdings[asset.account_id], asset.seq, asset.id)
        insert(self.holdings.setdefault(to_account_id, []), asset.seq, asset.id)
        asset.account_id = to_account_id

    def add_transfer(self, transfer: Transfer) -> None:
        """Record a new transfer in its sender's and its recipient's listings."""
        self.transfers[transfer.id] = transfer
        insert(self.sent.setdefault(transfer.sender_account_id, []), transfer.seq, transfer.id)
        insert(
            self.received.setdefault(transfer.recipient_account_id, []), transfer.seq, transfer.id
        )
