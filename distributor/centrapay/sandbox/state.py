"""The in-memory store: accounts, assets and transfers, and the rules that change them.

Every operation runs whole under one lock, so two requests for one card can never both
create an asset. Routes run on one event loop anyway; the lock keeps that true for any
caller on another thread (a test reading state, a future threaded handler).
"""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Iterable

from distributor.centrapay.sandbox import problems
from distributor.centrapay.sandbox.catalogue import Catalogue, TransferRule
from distributor.centrapay.sandbox.clock import SimClock, iso
from distributor.centrapay.sandbox.ledger import Ledger
from distributor.centrapay.sandbox.models import (
    CATEGORY_MONEY,
    WALLET_TYPE,
    Account,
    Asset,
    AssetStatus,
    Page,
    Transfer,
)
from distributor.centrapay.sandbox.paging import (
    Index,
    decode_page_key,
    entries_after,
    first_page,
)
from distributor.centrapay.sandbox.recipients import (
    ID_ALPHABET,
    mask_alias,
    never_claims,
    recipient_account_id,
    recipient_id,
)
from distributor.centrapay.sandbox.schemas import CreateTransferRequest, LoadAssetRequest
from distributor.constants import CATEGORY_GIFTCARD, TransferStatus

ASSET_ID_CHARS = 22
TRANSFER_ID_CHARS = 16
SECONDS_PER_DAY = 86_400
WALLET_DESCRIPTION = "NZD"

ALLOWED_MOVES = {
    TransferStatus.SENT: (TransferStatus.CREATED,),
    TransferStatus.CLAIMED: (TransferStatus.CREATED, TransferStatus.SENT),
    TransferStatus.EXPIRED: (TransferStatus.CREATED, TransferStatus.SENT),
    TransferStatus.RETURNED: (TransferStatus.EXPIRED,),
}
"""For each status, the statuses a transfer may move to it from."""

PENDING = (TransferStatus.CREATED, TransferStatus.SENT)


def new_id(length: int) -> str:
    """A random id in Centrapay's style (letters and digits)."""
    return "".join(random.choices(ID_ALPHABET, k=length))


class Store:
    """Accounts, assets and transfers of one sandbox, and the operations of the API."""

    def __init__(
        self,
        *,
        account_ids: Iterable[str],
        catalogue: Catalogue,
        ledger: Ledger,
        clock: SimClock,
        page_size: int,
    ) -> None:
        self._lock = threading.Lock()
        self._account_ids = tuple(account_ids)
        self._catalogue = catalogue
        self._ledger = ledger
        self._clock = clock
        self.page_size = page_size
        self._seq = 0
        self._accounts: dict[str, Account] = {}
        self._assets: dict[str, Asset] = {}
        self._transfers: dict[str, Transfer] = {}
        self._by_card: dict[str, str] = {}
        self._holdings: dict[str, Index] = {}
        self._sent: dict[str, Index] = {}
        self._received: dict[str, Index] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the start: the configured accounts with empty wallets, nothing else."""
        with self._lock:
            self._seq = 0
            for records in (
                self._accounts,
                self._assets,
                self._transfers,
                self._by_card,
                self._holdings,
                self._sent,
                self._received,
            ):
                records.clear()
            for account_id in self._account_ids:
                self._open_account(account_id)

    # --- accounts -----------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _open_account(self, account_id: str) -> Account:
        account = self._accounts.get(account_id)
        if account is not None:
            return account
        wallet = Asset(
            id=new_id(ASSET_ID_CHARS),
            seq=self._next_seq(),
            account_id=account_id,
            category=CATEGORY_MONEY,
            type=WALLET_TYPE,
            description=WALLET_DESCRIPTION,
            balance=0,
            created_at=iso(self._clock.now()),
        )
        self._assets[wallet.id] = wallet
        self._holdings.setdefault(account_id, []).append((wallet.seq, wallet.id))
        account = Account(id=account_id, wallet_id=wallet.id)
        self._accounts[account_id] = account
        return account

    def account(self, account_id: str) -> tuple[Account, Asset] | None:
        """An account and its wallet, or None if the sandbox has no such account."""
        with self._lock:
            account = self._accounts.get(account_id)
            return None if account is None else (account, self._assets[account.wallet_id])

    def update_account(
        self,
        account_id: str,
        *,
        wallet_balance: int | None = None,
        quota_limit: int | None = None,
        quota_usage: int | None = None,
    ) -> tuple[Account, Asset] | None:
        """Set an account's wallet balance and spend quota (what the control endpoint does)."""
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return None
            wallet = self._assets[account.wallet_id]
            if wallet_balance is not None:
                wallet.balance = wallet_balance
                wallet.balance_updated_at = iso(self._clock.now())
            if quota_limit is not None:
                account.quota_limit = quota_limit
            if quota_usage is not None:
                account.quota_usage = quota_usage
            return account, wallet

    # --- assets -------------------------------------------------------------------

    def load(self, *, account_id: str, request: LoadAssetRequest) -> tuple[Asset, Transfer | None]:
        """Load a giftcard (or give back the one the account holds), then transfer it if asked.

        A refused transfer leaves the card loaded: a retry gets the same asset back.
        """
        if request.accountId != account_id:
            raise problems.forbidden(problems.ACCOUNT_ACCESS_DENIED)
        card_number = request.externalId
        now = self._clock.now()
        info = self._catalogue.lookup(card_number, request.pin, now=now)
        with self._lock:
            held = self._assets.get(self._by_card.get(card_number, ""))
            if held is None:
                asset = Asset(
                    id=new_id(ASSET_ID_CHARS),
                    seq=self._next_seq(),
                    account_id=account_id,
                    category=CATEGORY_GIFTCARD,
                    type=request.type,
                    issuer=request.issuer,
                    external_id=card_number,
                    description=request.description or info.description,
                    balance=info.balance,
                    initial_balance=info.initial_balance,
                    product_code=info.product_code,
                    expires_at=info.expires_at,
                    balance_updated_at=iso(now),
                    created_at=iso(now),
                    transfer_rule=info.transfer_rule,
                )
                self._assets[asset.id] = asset
                self._by_card[card_number] = asset.id
                bisect.insort(self._holdings.setdefault(account_id, []), (asset.seq, asset.id))
                self._ledger.loaded(card_number)
            elif held.account_id == account_id and held.status is AssetStatus.ACTIVE:
                asset = held
                self._ledger.reloaded(card_number)
            else:
                raise problems.forbidden(problems.DUPLICATE_ASSET)
            if request.assetTransfer is None:
                return asset, None
            order = request.assetTransfer
            transfer = self._transfer(
                account_id,
                asset,
                recipient_alias=order.recipientAlias,
                message=order.message,
                sender_name=order.senderName,
            )
            return asset, transfer

    def _visible_asset(self, account_id: str, asset_id: str) -> Asset:
        asset = self._assets.get(asset_id)
        if asset is None or asset.account_id != account_id:
            raise problems.forbidden(problems.ASSET_NOT_FOUND)
        return asset

    def get_asset(self, *, account_id: str, asset_id: str) -> Asset:
        """One of the account's assets, whatever its status."""
        with self._lock:
            return self._visible_asset(account_id, asset_id)

    def list_assets(self, *, account_id: str, owner_id: str, page_key: str | None) -> Page[Asset]:
        """A page of the active assets of ``owner_id``, which must be the caller's account."""
        if owner_id != account_id:
            raise problems.forbidden(problems.ACCOUNT_ACCESS_DENIED)
        last_seq = decode_page_key(page_key)
        with self._lock:
            index = self._holdings.get(account_id, [])
            held = (self._assets[asset_id] for _, asset_id in entries_after(index, last_seq))
            active = (asset for asset in held if asset.status is AssetStatus.ACTIVE)
            return first_page(active, self.page_size)

    def archive(self, *, account_id: str, asset_id: str) -> Asset:
        """Archive a giftcard: it leaves the listings and its card may be loaded anew."""
        with self._lock:
            asset = self._visible_asset(account_id, asset_id)
            if asset.category != CATEGORY_GIFTCARD:
                raise problems.forbidden(problems.UNSUPPORTED_ASSET_TYPE)
            if asset.status is AssetStatus.TRANSFERRED:
                raise problems.forbidden(problems.ASSET_ALREADY_TRANSFERRED)
            if asset.status is AssetStatus.ACTIVE:
                asset.status = AssetStatus.ARCHIVED
                asset.balance = 0
                asset.balance_updated_at = iso(self._clock.now())
                if asset.external_id is not None:
                    self._by_card.pop(asset.external_id, None)
            return asset

    # --- transfers ----------------------------------------------------------------

    def transfer(self, *, account_id: str, request: CreateTransferRequest) -> Transfer:
        """Create an asset transfer of a giftcard or of an amount from the wallet."""
        with self._lock:
            former = self._assets.get(request.assetId)
            # Claimed by its recipient: no longer the sender's, but say why it cannot go again.
            if former and former.account_id != account_id and account_id in former.senders:
                raise problems.forbidden(problems.ASSET_ALREADY_TRANSFERRED)
            asset = self._visible_asset(account_id, request.assetId)
            return self._transfer(
                account_id,
                asset,
                recipient_alias=request.recipientAlias,
                message=request.message,
                sender_name=request.senderName,
                description=request.description,
                notify_url=request.notifyUrl,
                value=None if request.value is None else int(request.value),
            )

    def _transfer(
        self,
        account_id: str,
        asset: Asset,
        *,
        recipient_alias: str,
        message: str | None,
        sender_name: str | None,
        description: str | None = None,
        notify_url: str | None = None,
        value: int | None = None,
    ) -> Transfer:
        if asset.status is AssetStatus.TRANSFERRED:
            raise problems.forbidden(problems.ASSET_ALREADY_TRANSFERRED)
        if asset.status is AssetStatus.ARCHIVED:
            raise problems.forbidden(problems.ASSET_NOT_ACTIVE)
        account = self._accounts[account_id]
        if asset.category == CATEGORY_MONEY:
            if value is None:
                raise problems.bad_request("value is required to transfer from a wallet")
            self._spend_wallet(asset, value)
        else:
            if value is not None and value != asset.balance:
                raise problems.bad_request("value of a discrete asset must be its whole balance")
            value = asset.balance
            self._check_card_rule(account, asset)
        now = iso(self._clock.now())
        transfer = Transfer(
            id=new_id(TRANSFER_ID_CHARS),
            seq=self._next_seq(),
            status=TransferStatus.CREATED,
            value=value,
            asset_id=asset.id,
            asset_type=asset.type,
            sender_account_id=account_id,
            recipient_alias=recipient_alias,
            recipient_id=recipient_id(recipient_alias),
            recipient_account_id=recipient_account_id(recipient_alias),
            claims=not never_claims(recipient_alias),
            created_at=now,
            updated_at=now,
            description=description or asset.description,
            message=message,
            sender_name=sender_name,
            notify_url=notify_url,
        )
        self._transfers[transfer.id] = transfer
        self._sent.setdefault(account_id, []).append((transfer.seq, transfer.id))
        self._received.setdefault(transfer.recipient_account_id, []).append(
            (transfer.seq, transfer.id)
        )
        if asset.category == CATEGORY_GIFTCARD:
            asset.status = AssetStatus.TRANSFERRED
            asset.senders.add(account_id)
        if asset.external_id is not None:
            self._ledger.transferred(asset.external_id)
        return transfer

    def _spend_wallet(self, wallet: Asset, value: int) -> None:
        if value > wallet.balance:
            raise problems.forbidden(problems.INSUFFICIENT_WALLET_BALANCE)
        wallet.balance -= value
        wallet.balance_updated_at = iso(self._clock.now())

    def _check_card_rule(self, account: Account, asset: Asset) -> None:
        """Apply the 9906 (wallet) and 9907 (quota) magic rules to a giftcard transfer."""
        if asset.transfer_rule is TransferRule.WALLET:
            self._spend_wallet(self._assets[account.wallet_id], asset.balance)
        elif asset.transfer_rule is TransferRule.QUOTA:
            if account.quota_usage + asset.balance > account.quota_limit:
                raise problems.forbidden(
                    problems.QUOTA_EXCEEDED, quotas=[self._quota(account, asset)]
                )
            account.quota_usage += asset.balance

    def _quota(self, account: Account, asset: Asset) -> dict[str, str]:
        day_start = self._clock.now() // SECONDS_PER_DAY * SECONDS_PER_DAY
        return {
            "type": "spend",
            "limit": str(account.quota_limit),
            "usage": str(account.quota_usage),
            "assetType": asset.type,
            "period": "daily",
            "interval": iso(day_start),
        }

    def get_transfer(self, *, account_id: str, transfer_id: str) -> Transfer:
        """A transfer the account sent or received."""
        with self._lock:
            transfer = self._transfers.get(transfer_id)
            if transfer is None or account_id not in (
                transfer.sender_account_id,
                transfer.recipient_account_id,
            ):
                raise problems.forbidden(problems.ASSET_TRANSFER_NOT_FOUND)
            return transfer

    def list_transfers(
        self,
        *,
        account_id: str,
        sent_by: str | None,
        received_by: str | None,
        page_key: str | None,
    ) -> Page[Transfer]:
        """A page of the transfers the caller's account sent, or received."""
        if sent_by is None and received_by is None:
            raise problems.bad_request("senderAccountId or recipientAccountId is required")
        if account_id not in (sent_by, received_by) or (
            sent_by is not None and received_by is not None
        ):
            raise problems.forbidden(problems.ACCOUNT_ACCESS_DENIED)
        last_seq = decode_page_key(page_key)
        with self._lock:
            index = (self._sent if sent_by is not None else self._received).get(account_id, [])
            listed = (
                self._transfers[transfer_id] for _, transfer_id in entries_after(index, last_seq)
            )
            return first_page(listed, self.page_size)

    def resolve_claimable(self, *, account_id: str) -> list[Transfer]:
        """Claim every pending transfer addressed to the account; the transfers it claimed."""
        with self._lock:
            index = self._received.get(account_id, [])
            pending = [
                self._transfers[transfer_id]
                for _, transfer_id in index
                if self._transfers[transfer_id].status in PENDING
            ]
            for transfer in pending:
                self._move(transfer, TransferStatus.CLAIMED)
            return pending

    def advance(self, transfer_id: str, status: TransferStatus) -> Transfer | None:
        """Move a transfer on in its lifecycle; None if it has moved elsewhere meanwhile."""
        with self._lock:
            transfer = self._transfers.get(transfer_id)
            if transfer is None or transfer.status not in ALLOWED_MOVES[status]:
                return None
            self._move(transfer, status)
            return transfer

    def _move(self, transfer: Transfer, status: TransferStatus) -> None:
        transfer.status = status
        transfer.updated_at = iso(self._clock.now())
        asset = self._assets[transfer.asset_id]
        if status is TransferStatus.SENT:
            transfer.last_sent_to = transfer.recipient_alias
        elif status is TransferStatus.CLAIMED:
            self._hand_over(transfer, asset, self._open_account(transfer.recipient_account_id))
        elif status is TransferStatus.RETURNED:
            self._hand_over(transfer, asset, self._accounts[transfer.sender_account_id])
        if status in (TransferStatus.CLAIMED, TransferStatus.RETURNED):
            # Resolved: the docs say the PII is scrubbed from the transfer.
            transfer.recipient_alias = mask_alias(transfer.recipient_alias)
            transfer.message = None
            transfer.last_sent_to = None

    def _hand_over(self, transfer: Transfer, asset: Asset, to: Account) -> None:
        """Give the transferred value to ``to``: the giftcard itself, or wallet money."""
        if asset.category == CATEGORY_MONEY:
            wallet = self._assets[to.wallet_id]
            wallet.balance += transfer.value
            wallet.balance_updated_at = transfer.updated_at
            return
        if asset.account_id != to.id:
            self._holdings[asset.account_id].remove((asset.seq, asset.id))
            bisect.insort(self._holdings.setdefault(to.id, []), (asset.seq, asset.id))
            asset.account_id = to.id
        asset.status = AssetStatus.ACTIVE
