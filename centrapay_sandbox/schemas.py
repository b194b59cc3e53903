"""Request bodies of the sandbox's API, validated as strictly as the docs describe them."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from centrapay_sandbox.constants import (
    DESCRIPTION_MAX_CHARS,
    MESSAGE_MAX_CHARS,
    NZ_COUNTRY_CODE,
    SENDER_NAME_MAX_CHARS,
    AssetType,
    Category,
    Issuer,
)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")

HISTORY_MAX_TRANSFERS = 1_000_000

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Cents = Annotated[str, StringConstraints(pattern=r"^[1-9]\d{0,14}$")]
Message = Annotated[str, StringConstraints(max_length=MESSAGE_MAX_CHARS)]
SenderName = Annotated[str, StringConstraints(min_length=1, max_length=SENDER_NAME_MAX_CHARS)]
Description = Annotated[str, StringConstraints(min_length=1, max_length=DESCRIPTION_MAX_CHARS)]


def is_phone(alias: str) -> bool:
    """An alias that is a phone number rather than an email address."""
    return alias.startswith("+")


def _check_alias(value: str) -> str:
    if EMAIL.match(value):
        return value
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if (
        number is None
        or number.country_code != NZ_COUNTRY_CODE
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) != value
    ):
        raise ValueError("must be a +64 phone number in E.164 form or an email address")
    return value


def _check_url(value: str) -> str:
    if not URL.match(value):
        raise ValueError("must be an http or https URL")
    return value


Alias = Annotated[str, AfterValidator(_check_alias)]
Url = Annotated[str, AfterValidator(_check_url)]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class AssetTransferRequest(_Body):
    """``assetTransfer`` of a load-and-transfer request."""

    recipientAlias: Alias
    message: Message | None = None
    # Not SenderName: the load-and-transfer document's own example sends a 34-character
    # senderName, and the sandbox accepts what the documents show.
    senderName: NonEmpty | None = None
    notifyUrl: Url | None = None


class LoadAssetRequest(_Body):
    """Body of ``POST /api/external-assets``."""

    accountId: NonEmpty
    category: Category
    type: AssetType
    issuer: Issuer
    externalId: NonEmpty
    pin: str | None = None
    description: NonEmpty | None = None
    assetTransfer: AssetTransferRequest | None = None


class CreateTransferRequest(_Body):
    """Body of ``POST /api/asset-transfers``."""

    assetId: NonEmpty
    recipientAlias: Alias
    description: Description | None = None
    message: Message | None = None
    value: Cents | None = None
    senderName: SenderName | None = None
    senderAlias: Alias | None = None
    notifyUrl: Url | None = None


class ConfigPatch(_Body):
    """Body of ``PATCH /_sandbox/config``: any subset of the run-time knobs."""

    model_config = ConfigDict(strict=False, extra="forbid", frozen=True)

    latencyMs: float | None = Field(default=None, ge=0)
    rateLimit: float | None = Field(default=None, ge=0)
    rateBurst: int | None = Field(default=None, ge=1)
    fault5xx: float | None = Field(default=None, ge=0, le=1)
    faultTimeout: float | None = Field(default=None, ge=0, le=1)
    faultDrop: float | None = Field(default=None, ge=0, le=1)
    fault429: float | None = Field(default=None, ge=0, le=1)
    timeoutHoldSeconds: float | None = Field(default=None, gt=0)
    timeScale: float | None = Field(default=None, gt=0)
    listOrder: Literal["newest", "oldest"] | None = None
    singleCall: bool | None = None


class AccountPatch(_Body):
    """Body of ``PATCH /_sandbox/accounts/{accountId}``: wallet and spend quota."""

    walletBalance: Annotated[str, StringConstraints(pattern=r"^\d{1,15}$")] | None = None
    spendQuotaLimit: Annotated[str, StringConstraints(pattern=r"^\d{1,15}$")] | None = None
    spendQuotaUsage: Annotated[str, StringConstraints(pattern=r"^\d{1,15}$")] | None = None


class HistoryRequest(_Body):
    """Body of ``POST /_sandbox/accounts/{accountId}/history``."""

    model_config = ConfigDict(strict=False, extra="forbid", frozen=True)

    transfers: int = Field(ge=0, le=HISTORY_MAX_TRANSFERS)
    claimed: bool = True


class ClockAdvance(_Body):
    """Body of ``POST /_sandbox/clock/advance``."""

    model_config = ConfigDict(strict=False, extra="forbid", frozen=True)

    seconds: float = Field(gt=0)
