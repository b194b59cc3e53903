"""Files to upload for the access tests: one over the approval threshold, one under it."""

from __future__ import annotations

import httpx

BIG = (
    "+64221231234,23403321042,1111,Hello Bob\n"
    "+64221231235,23403321043,1112,Hello Alice\n"
    "+64221231236,23403321044,1113,Hello Eve\n"
)
SMALL = "+64221231237,23403321045,1114,Hello Dan\n"


def upload(client: httpx.Client, body: str = SMALL, **form: str) -> httpx.Response:
    """POST ``body`` as a new batch."""
    return client.post(
        "/batches", files={"file": ("cards.csv", body.encode(), "text/csv")}, data=form
    )
