"""Assets: load a giftcard (and transfer it in the same call), look one up, list an
account's, archive.

An account's listing holds what it owns and has not archived: active assets, and giftcards
in a pending outgoing transfer (``transferred``: still the sender's until claimed). The
``externalId`` filter is one dictionary lookup, whatever the account holds. The caller
(``Store``) holds the lock around every operation.
"""

from __future__ import annotations

from centrapay_sandbox import problems
from centrapay_sandbox.catalogue import CardInfo
from centrapay_sandbox.clock import iso
from centrapay_sandbox.constants import CATEGORY_GIFTCARD
from centrapay_sandbox.ledger import Ledger
from centrapay_sandbox.models import Asset, AssetStatus, Page, Transfer
from centrapay_sandbox.paging import ListOrder, Position, first_page, position, walk
from centrapay_sandbox.records import ASSET_ID_CHARS, Records, new_id
from centrapay_sandbox.schemas import LoadAssetRequest
from centrapay_sandbox.transfers import TransferBook

TRANSFER_NOT_ALLOWED = '"assetTransfer" is not allowed'
"""Centrapay's 400 message for ``assetTransfer`` where load-and-transfer is not enabled."""


class AssetBook:
    """The asset operations of the API over the store's records."""

    def __init__(self, records: Records, *, ledger: Ledger, transfers: TransferBook) -> None:
        self._records = records
        self._ledger = ledger
        self._transfers = transfers

    def load(
        self,
        *,
        account_id: str,
        request: LoadAssetRequest,
        info: CardInfo,
        now: float,
    ) -> tuple[Asset, Transfer | None]:
        """Load a giftcard (or give back the one the account holds), then transfer it if asked.

        A refused transfer leaves the card loaded: a retry gets the same asset back.
        """
        records = self._records
        card_number = request.externalId
        held = records.card_asset(card_number)
        if held is None:
            asset = Asset(
                id=new_id(ASSET_ID_CHARS),
                seq=records.next_seq(),
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
            records.add_asset(asset)
            self._ledger.loaded(card_number)
        elif held.account_id == account_id and held.status is AssetStatus.ACTIVE:
            asset = held
            self._ledger.reloaded(card_number)
        else:
            raise problems.forbidden(problems.DUPLICATE_ASSET)
        order = request.assetTransfer
        if order is None:
            return asset, None
        transfer = self._transfers.create(
            account_id,
            asset,
            recipient_alias=order.recipientAlias,
            message=order.message,
            sender_name=order.senderName,
            notify_url=order.notifyUrl,
        )
        return asset, transfer

    def visible(self, account_id: str, asset_id: str) -> Asset:
        """One of the account's assets, whatever its status; ASSET_NOT_FOUND otherwise."""
        asset = self._records.assets.get(asset_id)
        if asset is None or asset.account_id != account_id:
            raise problems.forbidden(problems.ASSET_NOT_FOUND)
        return asset

    def page(
        self,
        *,
        account_id: str,
        owner_id: str,
        external_id: str | None,
        page_key: str | None,
        page_size: int,
        order: ListOrder,
    ) -> Page[Asset]:
        """A page of the assets ``owner_id`` (the caller's account) holds, not archived;
        only the one of card ``external_id`` when it is given."""
        if owner_id != account_id:
            raise problems.forbidden(problems.ACCOUNT_ACCESS_DENIED)
        at = position(page_key, order)
        records = self._records
        if external_id is not None:
            held = [] if (card := records.card_asset(external_id)) is None else [card]
            candidates = [a for a in held if a.account_id == account_id and _after(a, at)]
            return first_page(candidates, page_size, at.order)
        index = records.holdings.get(account_id, [])
        listed = (records.assets[asset_id] for asset_id in walk(index, at))
        return first_page(
            (asset for asset in listed if asset.status is not AssetStatus.ARCHIVED),
            page_size,
            at.order,
        )

    def archive(self, *, account_id: str, asset_id: str) -> Asset:
        """Archive a giftcard: it leaves the listings and its card may be loaded anew."""
        asset = self.visible(account_id, asset_id)
        if asset.category != CATEGORY_GIFTCARD:
            raise problems.forbidden(problems.UNSUPPORTED_ASSET_TYPE)
        if asset.status is AssetStatus.TRANSFERRED:
            raise problems.forbidden(problems.ASSET_ALREADY_TRANSFERRED)
        if asset.status is AssetStatus.ACTIVE:
            self._records.archived(asset)
            asset.balance = 0
            asset.balance_updated_at = iso(self._records.clock.now())
        return asset


def _after(asset: Asset, at: Position) -> bool:
    """True if a walk at ``at`` has not served ``asset`` yet."""
    if at.after_seq is None:
        return True
    if at.order is ListOrder.OLDEST:
        return asset.seq > at.after_seq
    return asset.seq < at.after_seq
