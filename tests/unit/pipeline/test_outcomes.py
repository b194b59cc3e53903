"""Each Centrapay answer leads to one row outcome, decided in one table."""

from __future__ import annotations

import pytest

from distributor.errors import (
    BucketUnavailable,
    CentrapayBadRequest,
    CentrapayConnectionError,
    CentrapayError,
    CentrapayForbidden,
    CentrapayNotFound,
    CentrapayRateLimited,
    CentrapayServerError,
    CentrapayTimeout,
    CentrapayUnauthorized,
    SecretUnreadable,
    TokenWaitTooLong,
)
from distributor.pipeline.outcomes import Action, RetryPolicy, decide

POLICY = RetryPolicy(max_retries=3, base_seconds=1.0, max_seconds=8.0)


@pytest.mark.parametrize(
    ("error", "action", "code", "retryable"),
    [
        (CentrapayForbidden("x", code="UNKNOWN_ASSET"), Action.FAIL, "UNKNOWN_ASSET", False),
        (CentrapayForbidden("x", code="DUPLICATE_ASSET"), Action.FAIL, "DUPLICATE_ASSET", False),
        (
            CentrapayForbidden("x", code="UNSUPPORTED_ASSET_TYPE"),
            Action.FAIL,
            "UNSUPPORTED_ASSET_TYPE",
            False,
        ),
        (
            CentrapayForbidden("x", code="DENIED_BY_ASSET_PROVIDER"),
            Action.FAIL,
            "DENIED_BY_ASSET_PROVIDER",
            False,
        ),
        (
            CentrapayForbidden("x", code="EXPIRED_BY_ASSET_PROVIDER"),
            Action.FAIL,
            "EXPIRED_BY_ASSET_PROVIDER",
            False,
        ),
        (
            CentrapayForbidden("x", code="INSUFFICIENT_WALLET_BALANCE"),
            Action.FAIL,
            "INSUFFICIENT_WALLET_BALANCE",
            True,
        ),
        (CentrapayForbidden("x", code="QUOTA_EXCEEDED"), Action.FAIL, "QUOTA_EXCEEDED", True),
        (CentrapayBadRequest("x", status=400), Action.FAIL, "BAD_REQUEST", False),
        (CentrapayNotFound("x", status=404), Action.FAIL, "NOT_FOUND", False),
        (CentrapayUnauthorized("x", status=401), Action.PAUSE_BATCH, "UNAUTHORIZED", False),
        (CentrapayRateLimited("x", retry_after=2.0), Action.WAIT, "RATE_LIMITED", False),
        (TokenWaitTooLong(7.0), Action.WAIT, "RATE_LIMITED", False),
        (BucketUnavailable("redis down"), Action.WAIT, "BUCKET_UNAVAILABLE", False),
        (CentrapayServerError("x", status=502), Action.RETRY_LATER, "SERVER_ERROR", True),
        (CentrapayTimeout("x"), Action.RETRY_LATER, "TIMEOUT", True),
        (CentrapayConnectionError("x"), Action.RETRY_LATER, "CONNECTION_ERROR", True),
        (CentrapayError("x", status=418, code="HTTP_418"), Action.FAIL, "HTTP_418", True),
    ],
)
def test_each_answer_has_its_outcome(
    error: Exception, action: Action, code: str, retryable: bool
) -> None:
    outcome = decide(error, step_attempts=1, policy=POLICY)  # type: ignore[arg-type]
    assert (outcome.action, outcome.error_code, outcome.retryable) == (action, code, retryable)


def test_a_429_waits_as_long_as_retry_after_says() -> None:
    outcome = decide(CentrapayRateLimited("x", retry_after=2.5), step_attempts=1, policy=POLICY)
    assert outcome.delay_seconds == 2.5


def test_transient_faults_fail_retryably_past_the_retry_limit() -> None:
    outcome = decide(CentrapayTimeout("x"), step_attempts=4, policy=POLICY)
    assert (outcome.action, outcome.retryable) == (Action.FAIL, True)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6])
def test_backoff_grows_exponentially_with_jitter_under_a_ceiling(attempt: int) -> None:
    ceiling = min(8.0, 2 ** (attempt - 1))
    delays = [POLICY.delay(attempt) for _ in range(50)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1


def test_an_unexpected_error_is_not_swallowed() -> None:
    with pytest.raises(ValueError, match="boom"):
        decide(ValueError("boom"), step_attempts=1, policy=POLICY)  # type: ignore[arg-type]


def test_a_card_under_a_secret_no_longer_set_fails_retryably_instead_of_looping() -> None:
    outcome = decide(SecretUnreadable("x"), step_attempts=1, policy=POLICY)
    assert (outcome.action, outcome.error_code, outcome.retryable) == (
        Action.FAIL,
        "SECRET_UNREADABLE",
        True,
    )
