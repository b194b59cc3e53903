"""The whole API over real HTTP, for the integration tests that drive it as a client would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from distributor.api.app import create_app
from distributor.config import Settings
from tests.serving import serve_in_thread


@pytest.fixture
def dispatched() -> list[int]:
    """Batch ids the app asked to dispatch."""
    return []


@pytest.fixture
def base_url(settings: Settings, dispatched: list[int]) -> Iterator[str]:
    """The URL of the whole API, served by uvicorn in a thread, for these ``settings``."""
    with serve_in_thread(create_app(settings, dispatch=dispatched.append)) as url:
        yield url
