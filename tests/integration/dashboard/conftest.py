"""Clients logged in to the API served for the tests (tests/integration/conftest.py) the
ways the dashboard accepts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TEST_API_TOKEN


@pytest.fixture
def browser(base_url: str) -> Iterator[httpx.Client]:
    """A client logged in as a browser would: basic auth, the token as the password."""
    with httpx.Client(base_url=base_url, auth=("operator", TEST_API_TOKEN)) as client:
        yield client


@pytest.fixture
def scraper(api: httpx.Client) -> httpx.Client:
    """A client with the bearer token, as Prometheus is configured."""
    return api
