"""What each Centrapay answer means for a row: decided here, once.

| answer                                             | outcome                               |
|----------------------------------------------------|---------------------------------------|
| 403 INSUFFICIENT_WALLET_BALANCE, QUOTA_EXCEEDED    | failed, retryable (operator fixes it) |
| other 403 codes, 400, 404, other 4xx               | failed, not retryable automatically   |
| 429, no token in time, rate-limit store down       | back to waiting, attempt not counted  |
| 5xx, timeout, connection error                     | back to waiting after backoff, then   |
|                                                    | failed (retryable) past the limit     |
| 401                                                | the batch pauses; nothing else is sent|
| card number or PIN under a secret no longer set    | failed SECRET_UNREADABLE, retryable   |
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from distributor.errors import (
    BucketUnavailable,
    CentrapayError,
    CentrapayRateLimited,
    CentrapayRejected,
    CentrapayTransient,
    CentrapayUnauthorized,
    DistributorError,
    SecretUnreadable,
    TokenWaitTooLong,
)

OPERATOR_FIXABLE_CODES = frozenset({"INSUFFICIENT_WALLET_BALANCE", "QUOTA_EXCEEDED"})
LOAD_REFUSAL_CODES = frozenset(
    {
        "UNKNOWN_ASSET",
        "DUPLICATE_ASSET",
        "UNSUPPORTED_ASSET_TYPE",
        "DENIED_BY_ASSET_PROVIDER",
        "EXPIRED_BY_ASSET_PROVIDER",
        "ACCOUNT_ACCESS_DENIED",
    }
)
"""403 codes of the load itself (docs 002 and 004): the card was not loaded. Any other 403
to a load-and-transfer comes from its transfer, so the card is in our account."""
DUPLICATE_ASSET = "DUPLICATE_ASSET"
ALREADY_TRANSFERRED_CODES = frozenset({"ASSET_ALREADY_TRANSFERRED", "ASSET_NOT_ACTIVE"})
"""Transfer refusals that may mean an earlier attempt of ours was applied after all."""
BUCKET_DOWN_RETRY_SECONDS = 5.0
UNREADABLE_CODE = "SECRET_UNREADABLE"


class Action(StrEnum):
    """What the pipeline does with the row after an error."""

    FAIL = "fail"
    RETRY_LATER = "retry_later"
    WAIT = "wait"
    PAUSE_BATCH = "pause_batch"


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The decision for one error."""

    action: Action
    error_code: str
    retryable: bool = False
    delay_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Automatic retries of transient faults: exponential backoff with full jitter."""

    max_retries: int
    base_seconds: float
    max_seconds: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def decide(error: DistributorError, *, step_attempts: int, policy: RetryPolicy) -> Outcome:
    """The row outcome for ``error`` on a step tried ``step_attempts`` times so far."""
    if isinstance(error, CentrapayRateLimited):
        return Outcome(action=Action.WAIT, error_code=error.code, delay_seconds=error.retry_after)
    if isinstance(error, TokenWaitTooLong):
        return Outcome(
            action=Action.WAIT, error_code="RATE_LIMITED", delay_seconds=error.wait_seconds
        )
    if isinstance(error, BucketUnavailable):
        return Outcome(
            action=Action.WAIT,
            error_code="BUCKET_UNAVAILABLE",
            delay_seconds=BUCKET_DOWN_RETRY_SECONDS,
        )
    if isinstance(error, CentrapayUnauthorized):
        return Outcome(action=Action.PAUSE_BATCH, error_code=error.code)
    if isinstance(error, CentrapayTransient):
        if step_attempts <= policy.max_retries:
            return Outcome(
                action=Action.RETRY_LATER,
                error_code=error.code,
                retryable=True,
                delay_seconds=policy.delay(step_attempts),
            )
        return Outcome(action=Action.FAIL, error_code=error.code, retryable=True)
    if isinstance(error, SecretUnreadable):
        return Outcome(action=Action.FAIL, error_code=UNREADABLE_CODE, retryable=True)
    if isinstance(error, CentrapayRejected):
        return Outcome(
            action=Action.FAIL,
            error_code=error.code,
            retryable=error.code in OPERATOR_FIXABLE_CODES,
        )
    if isinstance(error, CentrapayError):
        return Outcome(action=Action.FAIL, error_code=error.code, retryable=True)
    raise error
