"""A long history for an account, made at once: cards loaded and transferred, straight
into the records, for benchmarks of listings and lookups (``POST
/_sandbox/accounts/{accountId}/history``).

No request goes through the gate, so nothing reaches the request log, and the card ledger
does not count these cards. Their card numbers (``H`` and the sequence number) hold a
letter, so no load request can ever name one: they cannot collide with a benchmark's cards.
"""

from __future__ import annotations

from dataclasses import dataclass

from centrapay_sandbox.clock import iso
from centrapay_sandbox.constants import CATEGORY_GIFTCARD, DEFAULT_ASSET_TYPE, TransferStatus
from centrapay_sandbox.models import Asset, AssetStatus, Transfer
from centrapay_sandbox.recipients import (
    mask_alias,
    recipient_account_id,
    recipient_id,
)
from centrapay_sandbox.records import (
    ASSET_ID_CHARS,
    TRANSFER_ID_CHARS,
    Records,
    new_id,
)

HISTORY_CARD_PREFIX = "H"
HISTORY_RECIPIENTS = 50  # distinct recipients the history's cards go to, in turn
HISTORY_BALANCE_CENTS = 5000
HISTORY_DESCRIPTION = "$50 History Giftcard"
HISTORY_ISSUER = "ezipay"


@dataclass(frozen=True, kw_only=True)
class Recipient:
    """One recipient of the history: alias, masked alias, user and account ids."""

    alias: str
    masked: str
    user_id: str
    account_id: str


def history_recipients(count: int = HISTORY_RECIPIENTS) -> list[Recipient]:
    """The recipients the history's transfers go to (NZ mobiles that claim)."""
    aliases = [f"+6427{index:07d}" for index in range(count)]
    return [
        Recipient(
            alias=alias,
            masked=mask_alias(alias),
            user_id=recipient_id(alias),
            account_id=recipient_account_id(alias),
        )
        for alias in aliases
    ]


def make_history(
    records: Records, *, account_id: str, transfers: int, claimed: bool
) -> list[Transfer]:
    """Load ``transfers`` cards into the account and transfer each to a recipient.

    ``claimed``: each transfer is already claimed and its card belongs to the recipient.
    Otherwise each is just ``created`` and its card is ``transferred`` in the account: the
    caller schedules the lifecycle, which then claims them as for any transfer.
    """
    now = iso(records.clock.now())
    recipients = history_recipients()
    for recipient in recipients:
        if claimed:
            records.open_account(recipient.account_id)
    made: list[Transfer] = []
    for index in range(transfers):
        recipient = recipients[index % len(recipients)]
        seq = records.next_seq()
        asset = Asset(
            id=new_id(ASSET_ID_CHARS),
            seq=seq,
            account_id=recipient.account_id if claimed else account_id,
            category=CATEGORY_GIFTCARD,
            type=DEFAULT_ASSET_TYPE,
            issuer=HISTORY_ISSUER,
            external_id=f"{HISTORY_CARD_PREFIX}{seq:012d}",
            description=HISTORY_DESCRIPTION,
            balance=HISTORY_BALANCE_CENTS,
            initial_balance=HISTORY_BALANCE_CENTS,
            product_code=None,
            balance_updated_at=now,
            created_at=now,
            status=AssetStatus.ACTIVE if claimed else AssetStatus.TRANSFERRED,
            senders={account_id},
        )
        records.add_asset(asset)
        transfer = Transfer(
            id=new_id(TRANSFER_ID_CHARS),
            seq=records.next_seq(),
            status=TransferStatus.CLAIMED if claimed else TransferStatus.CREATED,
            value=asset.balance,
            asset_id=asset.id,
            asset_type=asset.type,
            sender_account_id=account_id,
            recipient_alias=recipient.masked if claimed else recipient.alias,
            recipient_id=recipient.user_id,
            recipient_account_id=recipient.account_id,
            claims=True,
            created_at=now,
            updated_at=now,
            description=asset.description,
        )
        records.add_transfer(transfer)
        made.append(transfer)
    return made
