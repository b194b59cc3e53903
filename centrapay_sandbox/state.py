"""The in-memory store: accounts, assets and transfers, and the operations that change them.

Every operation runs whole under one lock, so two requests for one card can never both
create an asset. Routes run on one event loop anyway; the lock keeps that true for any
caller on another thread (a test reading state, a future threaded handler). The rules
themselves live by concept: ``assets``, ``transfers``, ``history``; the records and their
indexes in ``records``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from centrapay_sandbox import problems
from centrapay_sandbox.assets import TRANSFER_NOT_ALLOWED, AssetBook
from centrapay_sandbox.catalogue import Catalogue
from centrapay_sandbox.clock import SimClock, iso
from centrapay_sandbox.constants import TransferStatus
from centrapay_sandbox.history import make_history
from centrapay_sandbox.ledger import Ledger
from centrapay_sandbox.models import Account, Asset, Page, Transfer
from centrapay_sandbox.paging import ListOrder
from centrapay_sandbox.records import Records
from centrapay_sandbox.schemas import CreateTransferRequest, LoadAssetRequest
from centrapay_sandbox.transfers import TransferBook


class Store:
    """Accounts, assets and transfers of one sandbox, and the operations of the API.

    ``page_size``, ``list_order`` and ``single_call`` are run-time knobs the sandbox sets.
    """

    def __init__(
        self,
        *,
        account_ids: Iterable[str],
        catalogue: Catalogue,
        ledger: Ledger,
        clock: SimClock,
        page_size: int,
        list_order: ListOrder = ListOrder.NEWEST,
        single_call: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._account_ids = tuple(account_ids)
        self._catalogue = catalogue
        self._clock = clock
        self.page_size = page_size
        self.list_order = list_order
        self.single_call = single_call
        self._records = Records(clock=clock)
        self._transfers = TransferBook(self._records, ledger=ledger)
        self._assets = AssetBook(self._records, ledger=ledger, transfers=self._transfers)
        self.reset()

    def reset(self) -> None:
        """Back to the start: the configured accounts with empty wallets, nothing else."""
        with self._lock:
            self._records.clear()
            for account_id in self._account_ids:
                self._records.open_account(account_id)

    # --- accounts -----------------------------------------------------------------

    def account(self, account_id: str) -> tuple[Account, Asset] | None:
        """An account and its wallet, or None if the sandbox has no such account."""
        with self._lock:
            account = self._records.accounts.get(account_id)
            return None if account is None else (account, self._records.assets[account.wallet_id])

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
            account = self._records.accounts.get(account_id)
            if account is None:
                return None
            wallet = self._records.assets[account.wallet_id]
            if wallet_balance is not None:
                wallet.balance = wallet_balance
                wallet.balance_updated_at = iso(self._clock.now())
            if quota_limit is not None:
                account.quota_limit = quota_limit
            if quota_usage is not None:
                account.quota_usage = quota_usage
            return account, wallet

    def add_history(self, account_id: str, *, transfers: int, claimed: bool) -> list[Transfer]:
        """Give the account ``transfers`` earlier loaded-and-transferred cards (see
        ``history``); ACCOUNT_NOT_FOUND for an account the sandbox does not have."""
        with self._lock:
            if account_id not in self._records.accounts:
                raise problems.ApiProblem(404, problems.ACCOUNT_NOT_FOUND)
            return make_history(
                self._records, account_id=account_id, transfers=transfers, claimed=claimed
            )

    def sent_transfers(self, account_id: str) -> list[tuple[Transfer, str | None]]:
        """Every transfer the account sent, oldest first, with its card number (if a card)."""
        with self._lock:
            records = self._records
            sent = (records.transfers[tid] for _, tid in records.sent.get(account_id, []))
            return [(t, records.assets[t.asset_id].external_id) for t in sent]

    # --- assets -------------------------------------------------------------------

    def load(self, *, account_id: str, request: LoadAssetRequest) -> tuple[Asset, Transfer | None]:
        """Load a giftcard (or give back the one the account holds), then transfer it if
        asked; 400 for ``assetTransfer`` when single-call load-and-transfer is off."""
        if request.assetTransfer is not None and not self.single_call:
            raise problems.bad_request(TRANSFER_NOT_ALLOWED)
        if request.accountId != account_id:
            raise problems.forbidden(problems.ACCOUNT_ACCESS_DENIED)
        now = self._clock.now()
        info = self._catalogue.lookup(request.externalId, request.pin, now=now)
        with self._lock:
            return self._assets.load(account_id=account_id, request=request, info=info, now=now)

    def get_asset(self, *, account_id: str, asset_id: str) -> Asset:
        """One of the account's assets, whatever its status."""
        with self._lock:
            return self._assets.visible(account_id, asset_id)

    def list_assets(
        self,
        *,
        account_id: str,
        owner_id: str,
        page_key: str | None,
        external_id: str | None = None,
    ) -> Page[Asset]:
        """A page of the assets of ``owner_id`` (the caller's account), archived ones left
        out; only the card ``external_id``'s when given."""
        with self._lock:
            return self._assets.page(
                account_id=account_id,
                owner_id=owner_id,
                external_id=external_id,
                page_key=page_key,
                page_size=self.page_size,
                order=self.list_order,
            )

    def archive(self, *, account_id: str, asset_id: str) -> Asset:
        """Archive a giftcard: it leaves the listings and its card may be loaded anew."""
        with self._lock:
            return self._assets.archive(account_id=account_id, asset_id=asset_id)

    # --- transfers ----------------------------------------------------------------

    def transfer(self, *, account_id: str, request: CreateTransferRequest) -> Transfer:
        """Create an asset transfer of a giftcard or of an amount from the wallet."""
        with self._lock:
            former = self._records.assets.get(request.assetId)
            # Claimed by its recipient: no longer the sender's, but say why it cannot go again.
            if former and former.account_id != account_id and account_id in former.senders:
                raise problems.forbidden(problems.ASSET_ALREADY_TRANSFERRED)
            asset = self._assets.visible(account_id, request.assetId)
            return self._transfers.create(
                account_id,
                asset,
                recipient_alias=request.recipientAlias,
                message=request.message,
                sender_name=request.senderName,
                description=request.description,
                notify_url=request.notifyUrl,
                value=None if request.value is None else int(request.value),
            )

    def get_transfer(self, *, account_id: str, transfer_id: str) -> Transfer:
        """A transfer the account sent or received."""
        with self._lock:
            return self._transfers.get(account_id=account_id, transfer_id=transfer_id)

    def list_transfers(
        self,
        *,
        account_id: str,
        sent_by: str | None,
        received_by: str | None,
        page_key: str | None,
    ) -> Page[Transfer]:
        """A page of the transfers the caller's account sent, or received."""
        with self._lock:
            return self._transfers.page(
                account_id=account_id,
                sent_by=sent_by,
                received_by=received_by,
                page_key=page_key,
                page_size=self.page_size,
                order=self.list_order,
            )

    def cancel_transfer(self, *, account_id: str, transfer_id: str) -> Transfer:
        """Cancel a ``created`` or ``sent`` transfer the account sent; its card comes back
        active. 403 ``INVALID_ASSET_TRANSFER_STATUS`` in any other status."""
        with self._lock:
            return self._transfers.cancel(account_id=account_id, transfer_id=transfer_id)

    def resolve_claimable(self, *, account_id: str) -> list[Transfer]:
        """Claim every pending transfer addressed to the account; the transfers it claimed."""
        with self._lock:
            return self._transfers.resolve_claimable(account_id=account_id)

    def advance(self, transfer_id: str, status: TransferStatus) -> Transfer | None:
        """Move a transfer on in its lifecycle; None if it has moved elsewhere meanwhile."""
        with self._lock:
            return self._transfers.advance(transfer_id, status)
