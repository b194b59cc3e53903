"""How cards, phones and emails are shown: masked the way Centrapay masks them."""

from __future__ import annotations

CARD_VISIBLE_DIGITS = 5
CARD_MASK = "*" * 7
PHONE_VISIBLE_DIGITS = 4
PHONE_MASK = "*" * 5


def mask_card(card_number: str) -> str:
    """``23403321042`` -> ``*******21042``: a fixed mask, so the length is not shown."""
    return CARD_MASK + card_number[-CARD_VISIBLE_DIGITS:]


def mask_phone(e164: str, *, country_code: int) -> str:
    """``+64221231234`` -> ``+64*****1234``: country code and last four digits."""
    prefix = f"+{country_code}"
    return prefix + PHONE_MASK + e164[-PHONE_VISIBLE_DIGITS:]


def mask_email(address: str) -> str:
    """``bob@example.com`` -> ``b***@example.com``."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
