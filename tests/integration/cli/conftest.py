"""The environment the in-process CLI reads, and ``status --watch`` child processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from distributor.config import Settings, get_settings
from tests.integration.cli.cli_helpers import COLUMNS, TERMINAL_VARIABLES, Watcher

StartWatcher = Callable[..., Watcher]


@pytest.fixture
def environment(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """This process's environment pointing the CLI at the test database, 120 columns wide."""
    assert settings.distributor_secret_key is not None
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("DISTRIBUTOR_SECRET_KEY", settings.distributor_secret_key.get_secret_value())
    monkeypatch.setenv("COLUMNS", COLUMNS)
    for name in TERMINAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def start_watcher(settings: Settings) -> Iterator[StartWatcher]:
    """Start ``status BATCH --watch`` child processes, killed after the test if still running."""
    started: list[Watcher] = []

    def start(batch_id: int, **env: str) -> Watcher:
        watcher = Watcher(settings, batch_id, **env)
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()
