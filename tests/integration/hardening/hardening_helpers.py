"""What the hardening tests share: the small upload limits, the token, what was stored."""

from __future__ import annotations

from sqlalchemy import func, select

from distributor.db import session_scope
from distributor.models import Batch, Row
from tests.conftest import TEST_API_TOKEN

MAX_ROWS = 20  # UPLOAD_MAX_ROWS here: a file just over it stands for one of a million rows
MAX_BYTES = 11 * 1024 * 1024  # UPLOAD_MAX_BYTES here: room for a 10 MB cell, little more
AUTH = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


def stored(database_url: str) -> tuple[int, int]:
    """How many batches and rows the database holds."""
    with session_scope(database_url) as session:
        batches = session.scalar(select(func.count()).select_from(Batch)) or 0
        rows = session.scalar(select(func.count()).select_from(Row)) or 0
    return batches, rows
