"""Who a recipient alias is: the account it claims into, and whether it ever claims.

Phone numbers ending in ``NEVER_CLAIM_PHONE_SUFFIX`` and email addresses starting with
``NEVER_CLAIM_EMAIL_PREFIX`` never claim: their transfers expire and return to the sender
after two simulated weeks. Every other recipient claims shortly after the transfer.
"""

from __future__ import annotations

import hashlib
import uuid

from centrapay_sandbox.constants import NZ_COUNTRY_CODE, PHONE_MASK, PHONE_VISIBLE_DIGITS
from centrapay_sandbox.schemas import is_phone

NEVER_CLAIM_PHONE_SUFFIX = "9999"
NEVER_CLAIM_EMAIL_PREFIX = "noclaim"
ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ACCOUNT_ID_CHARS = 22
RECIPIENT_NAMESPACE = uuid.UUID("5b1f3a52-6c1e-4d4f-9a51-7f0d2f1c3e8a")


def never_claims(alias: str) -> bool:
    """True for the aliases whose transfers are never claimed (see the module docstring)."""
    if is_phone(alias):
        return alias.endswith(NEVER_CLAIM_PHONE_SUFFIX)
    return alias.lower().startswith(NEVER_CLAIM_EMAIL_PREFIX)


def recipient_account_id(alias: str) -> str:
    """The account an alias claims into: the same alias always gives the same account id."""
    number = int.from_bytes(hashlib.sha256(alias.encode()).digest()[:16], "big")
    chars = []
    for _ in range(ACCOUNT_ID_CHARS):
        number, index = divmod(number, len(ID_ALPHABET))
        chars.append(ID_ALPHABET[index])
    return "".join(chars)


def recipient_id(alias: str) -> str:
    """The user id behind an alias, stable like the account id."""
    return str(uuid.uuid5(RECIPIENT_NAMESPACE, alias))


def mask_alias(alias: str) -> str:
    """``+64221231234`` -> ``+64*****1234``; ``bob@example.com`` -> ``b***@example.com``."""
    if is_phone(alias):
        return f"+{NZ_COUNTRY_CODE}{PHONE_MASK}{alias[-PHONE_VISIBLE_DIGITS:]}"
    local, _, domain = alias.partition("@")
    return f"{local[:1]}***@{domain}"
