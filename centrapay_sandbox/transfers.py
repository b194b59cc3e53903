"""Asset transfers: create (with the magic wallet and quota rules), look up, list, cancel,
and move along the lifecycle, handing the value over when a transfer resolves.

The caller (``Store``) holds the lock around every operation.
"""

from __future__ import annotations

from centrapay_sandbox import problems
from centrapay_sandbox.catalogue import TransferRule
from centrapay_sandbox.clock import iso
from centrapay_sandbox.constants import CATEGORY_GIFTCARD, TransferStatus
from centrapay_sandbox.ledger import Ledger
from centrapay_sandbox.models import (
    CATEGORY_MONEY,
    Account,
    Asset,
    AssetStatus,
    Page,
    Transfer,
)
from centrapay_sandbox.paging import ListOrder, first_page, position, walk
from centrapay_sandbox.recipients import (
    mask_alias,
    never_claims,
    recipient_account_id,
    recipient_id,
)
from centrapay_sandbox.records import TRANSFER_ID_CHARS, Records, new_id

SECONDS_PER_DAY = 86_400

PENDING = (TransferStatus.CREATED, TransferStatus.SENT)
"""Statuses of a transfer not resolved yet: the recipient has not got the value."""

ALLOWED_MOVES = {
    TransferStatus.SENT: (TransferStatus.CREATED,),
    TransferStatus.CLAIMED: PENDING,
    TransferStatus.EXPIRED: PENDING,
    TransferStatus.RETURNED: (TransferStatus.EXPIRED,),
    TransferStatus.CANCELLED: PENDING,
}
"""For each status, the statuses a transfer may move to it from."""


class TransferBook:
    """The transfer operations of the API over the store's records."""

    def __init__(self, records: Records, *, ledger: Ledger) -> None:
        self._records = records
        self._ledger = ledger

    def create(
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
        """Transfer ``asset`` (the caller's, already checked) to ``recipient_alias``."""
        records = self._records
        if asset.status is AssetStatus.TRANSFERRED:
            raise problems.forbidden(problems.ASSET_ALREADY_TRANSFERRED)
        if asset.status is AssetStatus.ARCHIVED:
            raise problems.forbidden(problems.ASSET_NOT_ACTIVE)
        account = records.accounts[account_id]
        if asset.category == CATEGORY_MONEY:
            if value is None:
                raise problems.bad_request("value is required to transfer from a wallet")
            self._spend_wallet(asset, value)
        else:
            if value is not None and value != asset.balance:
                raise problems.bad_request("value of a discrete asset must be its whole balance")
            value = asset.balance
            self._check_card_rule(account, asset)
        now = iso(records.clock.now())
        transfer = Transfer(
            id=new_id(TRANSFER_ID_CHARS),
            seq=records.next_seq(),
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
        records.add_transfer(transfer)
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
        wallet.balance_updated_at = iso(self._records.clock.now())

    def _check_card_rule(self, account: Account, asset: Asset) -> None:
        """Apply the 9906 (wallet) and 9907 (quota) magic rules to a giftcard transfer."""
        if asset.transfer_rule is TransferRule.WALLET:
            self._spend_wallet(self._records.assets[account.wallet_id], asset.balance)
        elif asset.transfer_rule is TransferRule.QUOTA:
            if account.quota_usage + asset.balance > account.quota_limit:
                raise problems.forbidden(
                    problems.QUOTA_EXCEEDED, quotas=[self._quota(account, asset)]
                )
            account.quota_usage += asset.balance

    def _quota(self, account: Account, asset: Asset) -> dict[str, str]:
        day_start = self._records.clock.now() // SECONDS_PER_DAY * SECONDS_PER_DAY
        return {
            "type": "spend",
            "limit": str(account.quota_limit),
            "usage": str(account.quota_usage),
            "assetType": asset.type,
            "period": "daily",
            "interval": iso(day_start),
        }

    def get(self, *, account_id: str, transfer_id: str) -> Transfer:
        """A transfer the account sent or received."""
        transfer = self._records.transfers.get(transfer_id)
        if transfer is None or account_id not in (
            transfer.sender_account_id,
            transfer.recipient_account_id,
        ):
            raise problems.forbidden(problems.ASSET_TRANSFER_NOT_FOUND)
        return transfer

    def page(
        self,
        *,
        account_id: str,
        sent_by: str | None,
        received_by: str | None,
        page_key: str | None,
        page_size: int,
        order: ListOrder,
    ) -> Page[Transfer]:
        """A page of the transfers the caller's account sent, or received."""
        if sent_by is None and received_by is None:
            raise problems.bad_request("senderAccountId or recipientAccountId is required")
        if account_id not in (sent_by, received_by) or (
            sent_by is not None and received_by is not None
        ):
            raise problems.forbidden(problems.ACCOUNT_ACCESS_DENIED)
        at = position(page_key, order)
        records = self._records
        index = (records.sent if sent_by is not None else records.received).get(account_id, [])
        listed = (records.transfers[transfer_id] for transfer_id in walk(index, at))
        return first_page(listed, page_size, at.order)

    def cancel(self, *, account_id: str, transfer_id: str) -> Transfer:
        """Cancel a pending transfer the account sent: the value is the sender's again."""
        transfer = self.get(account_id=account_id, transfer_id=transfer_id)
        if transfer.sender_account_id != account_id:
            raise problems.forbidden(problems.ACCOUNT_ACCESS_DENIED)
        if transfer.status not in ALLOWED_MOVES[TransferStatus.CANCELLED]:
            raise problems.forbidden(problems.INVALID_ASSET_TRANSFER_STATUS)
        self._move(transfer, TransferStatus.CANCELLED)
        return transfer

    def resolve_claimable(self, *, account_id: str) -> list[Transfer]:
        """Claim every pending transfer addressed to the account; the transfers it claimed."""
        records = self._records
        pending = [
            records.transfers[transfer_id]
            for _, transfer_id in records.received.get(account_id, [])
            if records.transfers[transfer_id].status in PENDING
        ]
        for transfer in pending:
            self._move(transfer, TransferStatus.CLAIMED)
        return pending

    def advance(self, transfer_id: str, status: TransferStatus) -> Transfer | None:
        """Move a transfer on in its lifecycle; None if it has moved elsewhere meanwhile."""
        transfer = self._records.transfers.get(transfer_id)
        if transfer is None or transfer.status not in ALLOWED_MOVES[status]:
            return None
        self._move(transfer, status)
        return transfer

    def _move(self, transfer: Transfer, status: TransferStatus) -> None:
        records = self._records
        transfer.status = status
        transfer.updated_at = iso(records.clock.now())
        asset = records.assets[transfer.asset_id]
        if status is TransferStatus.SENT:
            transfer.last_sent_to = transfer.recipient_alias
        elif status is TransferStatus.CLAIMED:
            recipient = records.open_account(transfer.recipient_account_id)
            self._hand_over(transfer, asset, recipient)
        elif status in (TransferStatus.RETURNED, TransferStatus.CANCELLED):
            self._hand_over(transfer, asset, records.accounts[transfer.sender_account_id])
        if status in (TransferStatus.CLAIMED, TransferStatus.RETURNED):
            # Resolved: the docs say the PII is scrubbed from the transfer.
            transfer.recipient_alias = mask_alias(transfer.recipient_alias)
            transfer.message = None
            transfer.last_sent_to = None

    def _hand_over(self, transfer: Transfer, asset: Asset, to: Account) -> None:
        """Give the transferred value to ``to``: the giftcard itself, or wallet money."""
        if asset.category == CATEGORY_MONEY:
            wallet = self._records.assets[to.wallet_id]
            wallet.balance += transfer.value
            wallet.balance_updated_at = transfer.updated_at
            return
        self._records.move_asset(asset, to.id)
        asset.status = AssetStatus.ACTIVE
