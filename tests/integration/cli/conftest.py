"""The environment the in-process CLI reads, and ``status --watch`` child processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from distributor.config import Settings
from tests.integration.cli.cli_helpers import COLUMNS, TERMINAL_VARIABLES, Watcher

StartWatcher = Callable[..., Watcher]


@pytest.fixture
def environment(cli_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment pointing the CLI at the test database, 120 columns wide."""
    monkeypatch.setenv("COLUMNS", COLUMNS)
    for name in TERMINAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


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
