"""The HTTP status of each error of ``distributor.errors`` a request can end in, in one table:
the API answers it as JSON, the dashboard shows the batch page with the problem."""

from __future__ import annotations

from fastapi import status

from distributor.errors import (
    BucketUnavailable,
    CentrapayError,
    ConfigError,
    Conflict,
    DistributorError,
    Forbidden,
    NotFound,
    UploadRejected,
)

ERROR_STATUSES: dict[type[DistributorError], int] = {
    UploadRejected: status.HTTP_422_UNPROCESSABLE_CONTENT,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Forbidden: status.HTTP_403_FORBIDDEN,
    # Reclaim calls Centrapay within the request: a setting it needs is missing, the
    # rate-limit store is down (503), or Centrapay refused the key (502).
    ConfigError: status.HTTP_503_SERVICE_UNAVAILABLE,
    BucketUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    CentrapayError: status.HTTP_502_BAD_GATEWAY,
}


def status_for(error: DistributorError) -> int:
    """The status of ``error``: that of its nearest class in ERROR_STATUSES (as Starlette
    picks an exception handler), 500 for one the table does not hold."""
    for kind in type(error).__mro__:
        if kind in ERROR_STATUSES:
            return ERROR_STATUSES[kind]
    return status.HTTP_500_INTERNAL_SERVER_ERROR
