"""Error answers shaped like Centrapay's: ``{"statusCode", "error", "message"}``.

Business rules answer 403 with the rule's code in ``message``; a malformed request 400.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

# Codes the sandbox adds where the docs name none; listed in the README.
ASSET_NOT_FOUND = "ASSET_NOT_FOUND"
ASSET_TRANSFER_NOT_FOUND = "ASSET_TRANSFER_NOT_FOUND"
ASSET_ALREADY_TRANSFERRED = "ASSET_ALREADY_TRANSFERRED"
ASSET_NOT_ACTIVE = "ASSET_NOT_ACTIVE"
ACCOUNT_ACCESS_DENIED = "ACCOUNT_ACCESS_DENIED"
ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"  # control routes only

# Codes from the docs.
UNKNOWN_ASSET = "UNKNOWN_ASSET"
DUPLICATE_ASSET = "DUPLICATE_ASSET"
UNSUPPORTED_ASSET_TYPE = "UNSUPPORTED_ASSET_TYPE"
DENIED_BY_ASSET_PROVIDER = "DENIED_BY_ASSET_PROVIDER"
EXPIRED_BY_ASSET_PROVIDER = "EXPIRED_BY_ASSET_PROVIDER"
INSUFFICIENT_WALLET_BALANCE = "INSUFFICIENT_WALLET_BALANCE"
QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
INVALID_ASSET_TRANSFER_STATUS = "INVALID_ASSET_TRANSFER_STATUS"
RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
MISSING_AUTHENTICATION = "Missing authentication"


def problem_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body Centrapay sends with an error status."""
    return {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message, **extra}


class ApiProblem(Exception):
    """An error answer raised from the sandbox's logic and rendered by the app."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = problem_body(status, message, **extra)


def forbidden(code: str, **extra: Any) -> ApiProblem:
    """403 with a business-rule code."""
    return ApiProblem(403, code, **extra)


def bad_request(message: str) -> ApiProblem:
    """400: the request is malformed."""
    return ApiProblem(400, message)
