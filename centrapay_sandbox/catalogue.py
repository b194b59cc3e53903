"""The giftcards the sandbox's issuer knows: a catalogue file plus magic test numbers.

A card in the catalogue loads only with its PIN (a wrong PIN is ``UNKNOWN_ASSET``). Any
other card number loads with any PIN and a balance derived from the number, unless it
starts with one of the magic prefixes below, which produce one documented error on purpose.

Catalogue file (JSON)::

    {"cards": [{"cardNumber": "23403321042", "pin": "3771", "balance": "6000",
                "initialBalance": "7000", "description": "$60 Acme Giftcard",
                "productCode": "23403", "expiresAt": "2030-12-31T00:00:00.000Z",
                "state": "active", "transferRule": "none"}]}

Only ``cardNumber`` and ``balance`` are required; ``state`` is ``active``, ``denied`` or
``expired``; ``transferRule`` is ``none``, ``wallet`` or ``quota`` (as the 9906 and 9907
magic numbers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from centrapay_sandbox import problems
from centrapay_sandbox.clock import iso
from centrapay_sandbox.errors import ConfigError

CardNumber = Annotated[str, StringConstraints(pattern=r"^\d{1,64}$")]
CentsText = Annotated[str, StringConstraints(pattern=r"^\d{1,15}$")]

MAGIC_PREFIX_DIGITS = 4
UNKNOWN_CARD_EXPIRY_SECONDS = 365 * 24 * 3600


class TransferRule(StrEnum):
    """What a transfer of the card is checked against besides the asset itself."""

    NONE = "none"
    WALLET = "wallet"
    QUOTA = "quota"


MAGIC_LOAD_ERRORS = {
    "9901": problems.UNKNOWN_ASSET,
    "9902": problems.DUPLICATE_ASSET,
    "9903": problems.UNSUPPORTED_ASSET_TYPE,
    "9904": problems.DENIED_BY_ASSET_PROVIDER,
    "9905": problems.EXPIRED_BY_ASSET_PROVIDER,
}
"""Card-number prefixes whose load is refused with this code."""

MAGIC_TRANSFER_RULES = {
    "9906": TransferRule.WALLET,
    "9907": TransferRule.QUOTA,
}
"""Card-number prefixes that load fine and whose transfers meet this rule."""

STATE_ERRORS = {
    "denied": problems.DENIED_BY_ASSET_PROVIDER,
    "expired": problems.EXPIRED_BY_ASSET_PROVIDER,
}


class CatalogueCard(BaseModel):
    """One card of the catalogue file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cardNumber: CardNumber
    pin: str | None = None
    balance: CentsText
    initialBalance: CentsText | None = None
    description: str | None = None
    productCode: str | None = None
    expiresAt: str | None = None
    state: Literal["active", "denied", "expired"] = "active"
    transferRule: TransferRule = TransferRule.NONE


class CatalogueFile(BaseModel):
    """The catalogue file: ``{"cards": [...]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cards: list[CatalogueCard]


@dataclass(frozen=True, kw_only=True)
class CardInfo:
    """What the issuer says about a card that may be loaded."""

    balance: int
    initial_balance: int
    description: str
    product_code: str
    expires_at: str
    transfer_rule: TransferRule


def dollars(cents: int) -> str:
    """``6000`` -> ``$60``; ``6050`` -> ``$60.50``."""
    whole, part = divmod(cents, 100)
    return f"${whole}" if part == 0 else f"${whole}.{part:02d}"


def derived_balance(card_number: str) -> int:
    """The balance of a card outside the catalogue: $10 to $100 in $10 steps, by its number."""
    digest = hashlib.sha256(card_number.encode()).digest()
    return (digest[0] % 10 + 1) * 1000


class Catalogue:
    """The issuer's view of every card: catalogue entries first, then magic prefixes."""

    def __init__(self, cards: list[CatalogueCard] | None = None) -> None:
        self._cards = {card.cardNumber: card for card in cards or []}

    @classmethod
    def from_file(cls, path: Path) -> Catalogue:
        """Read a catalogue file; ConfigError says what is wrong with it."""
        try:
            parsed = CatalogueFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(f"card catalogue {path} is invalid: {reason}") from None
        return cls(parsed.cards)

    def __len__(self) -> int:
        return len(self._cards)

    def lookup(self, card_number: str, pin: str | None, *, now: float) -> CardInfo:
        """The card's details, or the ApiProblem the issuer answers for it."""
        card = self._cards.get(card_number)
        if card is not None:
            return _catalogue_card(card, pin)
        if not card_number.isdigit():
            raise problems.forbidden(problems.UNKNOWN_ASSET)
        prefix = card_number[:MAGIC_PREFIX_DIGITS]
        if prefix in MAGIC_LOAD_ERRORS:
            raise problems.forbidden(MAGIC_LOAD_ERRORS[prefix])
        balance = derived_balance(card_number)
        return CardInfo(
            balance=balance,
            initial_balance=balance,
            description=f"{dollars(balance)} Sandbox Giftcard",
            product_code=card_number[:5],
            expires_at=iso(now + UNKNOWN_CARD_EXPIRY_SECONDS),
            transfer_rule=MAGIC_TRANSFER_RULES.get(prefix, TransferRule.NONE),
        )


def _catalogue_card(card: CatalogueCard, pin: str | None) -> CardInfo:
    if card.pin is not None and pin != card.pin:
        raise problems.forbidden(problems.UNKNOWN_ASSET)
    if card.state in STATE_ERRORS:
        raise problems.forbidden(STATE_ERRORS[card.state])
    balance = int(card.balance)
    return CardInfo(
        balance=balance,
        initial_balance=int(card.initialBalance or card.balance),
        description=card.description or f"{dollars(balance)} Giftcard",
        product_code=card.productCode or card.cardNumber[:5],
        expires_at=card.expiresAt or "2099-12-31T00:00:00.000Z",
        transfer_rule=card.transferRule,
    )
