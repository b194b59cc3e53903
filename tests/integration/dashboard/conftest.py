"""The API served over real HTTP, and clients logged in the ways the dashboard accepts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from distributor.api.app import create_app
from distributor.config import Settings
from tests.conftest import TEST_API_TOKEN
from tests.serving import serve_in_thread


@pytest.fixture
def dispatched() -> list[int]:
    """Batch ids the app asked to dispatch."""
    return []


@pytest.fixture
def base_url(settings: Settings, dispatched: list[int]) -> Iterator[str]:
    """The URL of the whole API, served by uvicorn in a thread."""
    with serve_in_thread(create_app(settings, dispatch=dispatched.append)) as url:
        yield url


@pytest.fixture
def browser(base_url: str) -> Iterator[httpx.Client]:
    """A client logged in as a browser would: basic auth, the token as the password."""
    with httpx.Client(base_url=base_url, auth=("operator", TEST_API_TOKEN)) as client:
        yield client


@pytest.fixture
def scraper(base_url: str) -> Iterator[httpx.Client]:
    """A client with the bearer token, as Prometheus is configured."""
    headers = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
    with httpx.Client(base_url=base_url, headers=headers) as client:
        yield client
