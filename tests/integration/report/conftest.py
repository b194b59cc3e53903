"""The seeded batch every report test reads."""

from __future__ import annotations

import pytest

from distributor.config import Settings
from tests.integration.report.report_helpers import seed_batch


@pytest.fixture
def batch_id(settings: Settings) -> int:
    """A batch with pending, sent, failed and invalid rows, in its own test database."""
    return seed_batch(settings)
