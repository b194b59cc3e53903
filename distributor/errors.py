"""The one exception tree of the project.

Centrapay's answers become typed exceptions in ``centrapay.client``; which row outcome each
one leads to is decided once, in ``pipeline.outcomes``.
"""

from __future__ import annotations


class DistributorError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(DistributorError):
    """A setting is missing or malformed; the message names the variable."""


class UploadRejected(DistributorError):
    """A whole upload is refused (not CSV, not UTF-8, no valid row, too large); nothing stored."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class SecretUnreadable(DistributorError):
    """A stored card number or PIN was encrypted under a secret that is no longer configured."""


class NotFound(DistributorError):
    """A batch or row that does not exist."""


class Conflict(DistributorError):
    """The operation does not fit the current state (e.g. retrying a row whose card is live)."""


class Forbidden(DistributorError):
    """The acting user's role does not allow the action, or four-eyes forbids it."""


class DatabaseUnavailable(DistributorError):
    """Postgres (or SQLite) cannot be reached or dropped the connection; try again later."""


class BucketUnavailable(DistributorError):
    """The rate-limit bucket cannot be reached; no call may go out unthrottled."""


class CentrapayError(DistributorError):
    """An answer from Centrapay (or the lack of one) that is not a success."""

    code: str = "CENTRAPAY_ERROR"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        if code is not None:
            self.code = code


class CentrapayRejected(CentrapayError):
    """Centrapay refused the request (400 or a 403 business rule); sending it again is futile."""


class CentrapayBadRequest(CentrapayRejected):
    """400: the request was malformed."""

    code = "BAD_REQUEST"


class CentrapayForbidden(CentrapayRejected):
    """403 with a business-rule code in ``message`` (UNKNOWN_ASSET, QUOTA_EXCEEDED, ...)."""

    def __init__(
        self, message: str, *, code: str, status: int = 403, body: dict[str, object] | None = None
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.body = body or {}


class CentrapayNotFound(CentrapayRejected):
    """404: the asset or transfer does not exist."""

    code = "NOT_FOUND"


class CentrapayUnauthorized(CentrapayError):
    """401: the API key is missing or wrong; every call with it will fail."""

    code = "UNAUTHORIZED"


class CentrapayRateLimited(CentrapayError):
    """429: over the rate limit; wait ``retry_after`` seconds (not a failed attempt)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class CentrapayTransient(CentrapayError):
    """A fault that should pass: retry automatically with backoff.

    The request may have been applied (a timeout or dropped connection after sending, or
    a 5xx), so the next attempt of the step looks before it sends again.
    """


class CentrapayServerError(CentrapayTransient):
    """5xx from Centrapay."""

    code = "SERVER_ERROR"


class CentrapayTimeout(CentrapayTransient):
    """No answer in time."""

    code = "TIMEOUT"


class CentrapayConnectionError(CentrapayTransient):
    """The connection failed or dropped."""

    code = "CONNECTION_ERROR"


class TokenWaitTooLong(DistributorError):
    """No rate-limit token within the allowed wait: give the worker slot back, come back later."""

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(f"come back for a Centrapay token in {wait_seconds:.1f}s")
        self.wait_seconds = max(0.0, wait_seconds)
