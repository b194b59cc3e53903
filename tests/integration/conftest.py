"""The whole API over real HTTP, for the integration tests that drive it as a client would;
the environment the in-process CLI reads; a standalone-mode SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distributor.api.app import create_app
from distributor.config import Settings, get_settings
from distributor.db import dispose_engines, get_engine
from distributor.models import Base
from tests.conftest import TEST_API_TOKEN
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


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    """A client of the API at ``base_url`` with the bearer token."""
    headers = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
    with httpx.Client(base_url=base_url, headers=headers) as client:
        yield client


@pytest.fixture
def cli_environment(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The variables that point a command at the test's database, Redis and secret, set for
    this process too, run from ``tmp_path`` (no stray .env file); the settings cache is
    cleared before and after, so the in-process CLI reads them."""
    assert settings.distributor_secret_key is not None
    variables = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DISTRIBUTOR_SECRET_KEY": settings.distributor_secret_key.get_secret_value(),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield variables
    get_settings.cache_clear()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A standalone-mode SQLite database file with the models' schema.

    Built from the models: migration 0001's ``now()`` defaults do not exist on SQLite.
    """
    url = f"sqlite:///{tmp_path}/standalone.db"
    Base.metadata.create_all(get_engine(url))
    yield url
    dispose_engines()
