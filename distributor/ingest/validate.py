"""The row rules: pure functions from a record's text to the values to store, or problems.

Problem messages never repeat a card number, PIN or recipient: they end up in
``rows.error_detail``, which the API, dashboard and reports show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from distributor.constants import (
    ASSET_TYPES,
    DEFAULT_PHONE_REGION,
    DESCRIPTION_MAX_CHARS,
    ISSUERS,
    MESSAGE_MAX_CHARS,
    NZ_COUNTRY_CODE,
    SENDER_NAME_MAX_CHARS,
)
from distributor.ingest import columns as col
from distributor.ingest.columns import Layout
from distributor.ingest.parse import RawRecord
from distributor.ingest.values import BatchOptions
from distributor.masking import mask_card, mask_email, mask_phone

MISSING_FIELD = "MISSING_FIELD"
EXTRA_FIELDS = "EXTRA_FIELDS"
INVALID_RECIPIENT = "INVALID_RECIPIENT"
INVALID_CARD_NUMBER = "INVALID_CARD_NUMBER"
INVALID_PIN = "INVALID_PIN"
MESSAGE_TOO_LONG = "MESSAGE_TOO_LONG"
INVALID_TYPE = "INVALID_TYPE"
INVALID_ISSUER = "INVALID_ISSUER"
SENDER_NAME_TOO_LONG = "SENDER_NAME_TOO_LONG"
DESCRIPTION_TOO_LONG = "DESCRIPTION_TOO_LONG"

CARD_NUMBER_MAX_DIGITS = 64
PIN_MAX_DIGITS = 32
EMAIL_MAX_CHARS = 254
PHONE_CACHE_SIZE = 4_096  # entries; bounded, so a file of unique numbers cannot grow it

_CARD_NUMBER = re.compile(r"[0-9]+(?:[\s-]+[0-9]+)*")  # spaces and dashes between digits only
_CARD_SEPARATORS = re.compile(r"[\s-]+")
_PIN = re.compile(r"[0-9]+")
_PHONE_CHARS = re.compile(r"\+?[0-9 ().-]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_SCIENTIFIC = re.compile(r"[0-9](\.[0-9]+)?[eE]\+?[0-9]+")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")
_OTHER_DIGITS = re.compile(r"(?![0-9])\d")  # full-width, Arabic-Indic, ...: look like digits
OTHER_DIGITS = "must contain digits only, 0-9: some are full-width or of another script"
_NO_SMS = {
    phonenumbers.PhoneNumberType.FIXED_LINE: "a landline",
    phonenumbers.PhoneNumberType.TOLL_FREE: "a toll-free number",
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    phonenumbers.PhoneNumberType.SHARED_COST: "a shared-cost number",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule of a row: the CSV column, an error code, a message without secrets."""

    field: str
    code: str
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckedRow:
    """A record after the rules: what can be stored, and its problems (none: it can be sent).

    Each value is None when its own rule failed, so that what is stored always fits its
    column. ``card_number`` is set whenever the card field is well formed, even on an
    invalid row, so that it can be stored encrypted; ``pin`` only matters for a valid row.
    """

    line: int
    recipient: str | None
    recipient_masked: str | None
    card_number: str | None
    card_masked: str | None
    pin: str | None
    message: str | None
    sender_name: str | None
    description: str | None
    asset_type: str | None
    issuer: str | None
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        """True when no rule is broken."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class Recipient:
    """A recipient as it will be sent (E.164 or email) and as it is shown."""

    value: str
    masked: str


def _mask_unknown(raw: str) -> str:
    return "*****" + raw[-4:] if len(raw) > 8 else "*****"


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def check_phone(raw: str) -> Recipient | str:
    """A phone number in E.164 (local numbers read as NZ), or why it cannot be sent to."""
    if not _PHONE_CHARS.fullmatch(raw):
        return "not a phone number or email address"
    try:
        number = phonenumbers.parse(raw, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return "not a phone number or email address"
    if number.country_code != NZ_COUNTRY_CODE:
        return (
            f"a +{number.country_code} number; Centrapay sends to +{NZ_COUNTRY_CODE} numbers only"
        )
    # number_type() is the costly half of is_valid_number(); UNKNOWN means not valid
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        return "not a valid NZ phone number"
    if kind in _NO_SMS:
        return f"{_NO_SMS[kind]}; the giftcard is sent by SMS, so it needs a mobile number"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Recipient(e164, mask_phone(e164, country_code=NZ_COUNTRY_CODE))


def check_recipient(raw: str) -> Recipient | Problem:
    """The recipient normalised (phone to E.164, email as given), or the problem with it."""
    if not raw:
        return Problem(col.RECIPIENT, MISSING_FIELD, "missing")
    if "@" in raw:
        if len(raw) > EMAIL_MAX_CHARS or not _EMAIL.fullmatch(raw):
            return Problem(col.RECIPIENT, INVALID_RECIPIENT, "not a valid email address")
        local, _, domain = raw.rpartition("@")
        address = f"{local}@{domain.lower()}"
        return Recipient(address, mask_email(address))
    if _OTHER_DIGITS.search(raw):
        return Problem(col.RECIPIENT, INVALID_RECIPIENT, OTHER_DIGITS)
    phone = check_phone(raw)
    if isinstance(phone, str):
        return Problem(col.RECIPIENT, INVALID_RECIPIENT, phone)
    return phone


def check_card_number(raw: str) -> str | Problem:
    """The card number as digits (spaces and dashes removed), or the problem with it."""
    if not raw:
        return Problem(col.CARD_NUMBER, MISSING_FIELD, "missing")
    if _SCIENTIFIC.fullmatch(raw):
        return Problem(
            col.CARD_NUMBER,
            INVALID_CARD_NUMBER,
            "in scientific notation (a spreadsheet changed it); format the column as text",
        )
    if _DECIMAL.fullmatch(raw):
        return Problem(
            col.CARD_NUMBER,
            INVALID_CARD_NUMBER,
            "must contain digits only, not a decimal number (a spreadsheet changed it); "
            "format the column as text",
        )
    if _OTHER_DIGITS.search(raw):
        return Problem(col.CARD_NUMBER, INVALID_CARD_NUMBER, OTHER_DIGITS)
    if not _CARD_NUMBER.fullmatch(raw):
        return Problem(col.CARD_NUMBER, INVALID_CARD_NUMBER, "must contain digits only")
    digits = _CARD_SEPARATORS.sub("", raw)
    if len(digits) > CARD_NUMBER_MAX_DIGITS:
        return Problem(
            col.CARD_NUMBER,
            INVALID_CARD_NUMBER,
            f"longer than {CARD_NUMBER_MAX_DIGITS} digits",
        )
    return digits


def check_pin(raw: str, *, required: bool) -> str | Problem | None:
    """The PIN as digits, None when empty and allowed, or the problem with it."""
    if not raw:
        return Problem(col.PIN, MISSING_FIELD, "missing (PINs are required)") if required else None
    if _OTHER_DIGITS.search(raw):
        return Problem(col.PIN, INVALID_PIN, OTHER_DIGITS)
    if not _PIN.fullmatch(raw):
        return Problem(col.PIN, INVALID_PIN, "must contain digits only")
    if len(raw) > PIN_MAX_DIGITS:
        return Problem(col.PIN, INVALID_PIN, f"longer than {PIN_MAX_DIGITS} digits")
    return raw


def check_message(raw: str) -> Problem | None:
    """The problem with a message, if any (Centrapay's limit is 100 characters)."""
    if len(raw) > MESSAGE_MAX_CHARS:
        return Problem(
            col.MESSAGE,
            MESSAGE_TOO_LONG,
            f"{len(raw)} characters; the limit is {MESSAGE_MAX_CHARS}",
        )
    return None


def check_choice(raw: str, *, field: str, allowed: tuple[str, ...], code: str) -> Problem | None:
    """The problem with a value that must be one of ``allowed``, if any."""
    if raw in allowed:
        return None
    return Problem(field, code, f"must be one of {', '.join(allowed)}")


def check_text(raw: str | None, *, field: str, limit: int, code: str) -> Problem | None:
    """The problem with a free-text column longer than Centrapay allows, if any."""
    if raw is not None and len(raw) > limit:
        return Problem(field, code, f"{len(raw)} characters; Centrapay's limit is {limit}")
    return None


def check_shape(missing: tuple[str, ...], extra: int, *, expected: int) -> Problem | None:
    """The problem with a record that has too few or too many fields, if any."""
    if missing:
        return Problem(
            missing[0],
            MISSING_FIELD,
            f"the row has no {', '.join(missing)} column ({expected - len(missing)} of {expected})",
        )
    if extra:
        return Problem(
            "row",
            EXTRA_FIELDS,
            f"{extra} field(s) more than the {expected} columns (quote a message with commas)",
        )
    return None


def check_record(
    record: RawRecord, *, layout: Layout, options: BatchOptions, pin_required: bool
) -> CheckedRow:
    """Apply every rule to one record; the first problem found decides the row's error code."""
    values, missing, extra = layout.split(record)
    problems: list[Problem] = []
    shape = check_shape(missing, extra, expected=len(layout.names))
    if shape is not None:
        problems.append(shape)

    recipient = check_recipient(values.get(col.RECIPIENT, ""))
    card = check_card_number(values.get(col.CARD_NUMBER, ""))
    pin = check_pin(values.get(col.PIN, ""), required=pin_required)
    message = values.get(col.MESSAGE, "").replace("\r\n", "\n")
    asset_type = values.get(col.TYPE, "").lower() or options.asset_type
    issuer = values.get(col.ISSUER, "").lower() or options.issuer
    sender_name = values.get(col.SENDER_NAME) or options.sender_name
    description = values.get(col.DESCRIPTION) or options.description

    message_problem = check_message(message)
    type_problem = check_choice(asset_type, field=col.TYPE, allowed=ASSET_TYPES, code=INVALID_TYPE)
    issuer_problem = check_choice(issuer, field=col.ISSUER, allowed=ISSUERS, code=INVALID_ISSUER)
    sender_problem = check_text(
        sender_name, field=col.SENDER_NAME, limit=SENDER_NAME_MAX_CHARS, code=SENDER_NAME_TOO_LONG
    )
    description_problem = check_text(
        description, field=col.DESCRIPTION, limit=DESCRIPTION_MAX_CHARS, code=DESCRIPTION_TOO_LONG
    )
    for outcome in (
        recipient,
        card,
        pin,
        message_problem,
        type_problem,
        issuer_problem,
        sender_problem,
        description_problem,
    ):
        if isinstance(outcome, Problem) and outcome.field not in missing:
            problems.append(outcome)

    raw_recipient = values.get(col.RECIPIENT, "")
    raw_card = values.get(col.CARD_NUMBER, "")
    return CheckedRow(
        line=record.line,
        recipient=recipient.value if isinstance(recipient, Recipient) else None,
        recipient_masked=(
            recipient.masked
            if isinstance(recipient, Recipient)
            else _mask_unknown(raw_recipient)
            if raw_recipient
            else None
        ),
        card_number=card if isinstance(card, str) else None,
        card_masked=mask_card(card if isinstance(card, str) else raw_card) if raw_card else None,
        pin=pin if isinstance(pin, str) else None,
        message=message or None,
        sender_name=None if sender_problem else sender_name,
        description=None if description_problem else description,
        asset_type=None if type_problem else asset_type,
        issuer=None if issuer_problem else issuer,
        problems=tuple(problems),
    )
