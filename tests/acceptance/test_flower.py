"""Flower over a real worker: behind basic auth, readable task names with the batch id, and
no PIN, card number or phone anywhere in what it shows."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from distributor.broker import rows_per_message
from distributor.config import Settings
from tests.acceptance.conftest import enqueue, wait_until_settled
from tests.factories import store_running_batch
from tests.processes import ServiceProcess, service_env

StartService = Callable[..., ServiceProcess]

FLOWER_USER = "ops"
FLOWER_PASSWORD = "flower-test-Qx7pZr"
FLOWER_TIMEOUT_SECONDS = 30.0
ROWS = 5
CARDS = [(f"2340{i:07d}", f"{86420975 + i * 1111}", f"+6421555{i:04d}") for i in range(ROWS)]
"""(card number, PIN, phone) per row: long enough not to turn up in ids or timestamps."""


@pytest.fixture
def flower(pipeline_settings: Settings, tmp_path: Path) -> Iterator[tuple[ServiceProcess, str]]:
    """``distributor flower`` on a free port with basic auth; its process and base URL."""
    process = ServiceProcess(
        ["flower", "--port", "0"],
        env=service_env(pipeline_settings, FLOWER_BASIC_AUTH=f"{FLOWER_USER}:{FLOWER_PASSWORD}"),
        log_path=tmp_path / "flower.log",
        ready="Visit me at",
    )
    try:
        process.start()
        found = re.search(r"Visit me at (http://127\.0\.0\.1:\d+)", process.log_text())
        assert found, process.log_text()
        yield process, found.group(1)
    finally:
        process.kill()


def _row_tasks(flower_api: httpx.Client, expected: int) -> dict[str, dict[str, Any]]:
    """Flower's row tasks, once it has seen ``expected`` of them succeed."""
    deadline = time.monotonic() + FLOWER_TIMEOUT_SECONDS
    while True:
        tasks: dict[str, dict[str, Any]] = flower_api.get("/api/tasks").json()
        done = [t for t in tasks.values() if t.get("state") == "SUCCESS"]
        if len(done) >= expected:
            return tasks
        assert time.monotonic() < deadline, f"Flower saw {len(done)} of {expected} tasks succeed"
        time.sleep(0.2)


EVENTS_ENABLED_TIMEOUT_SECONDS = 20.0


def test_flower_needs_its_password_and_never_prints_it(
    flower: tuple[ServiceProcess, str],
) -> None:
    process, url = flower
    assert httpx.get(url + "/api/tasks").status_code == 401
    assert httpx.get(url + "/api/tasks", auth=(FLOWER_USER, "wrong")).status_code == 401
    assert httpx.get(url + "/api/tasks", auth=(FLOWER_USER, FLOWER_PASSWORD)).status_code == 200
    assert FLOWER_PASSWORD not in process.log_text()


def test_flower_shows_named_row_tasks_with_the_batch_id_and_no_card_pin_or_phone(
    pipeline_settings: Settings, flower: tuple[ServiceProcess, str], start_service: StartService
) -> None:
    _, url = flower
    worker = start_service("worker")
    # Workers send task events only once Flower asks (it broadcasts every few seconds).
    deadline = time.monotonic() + EVENTS_ENABLED_TIMEOUT_SECONDS
    while "enabled by remote" not in worker.log_text():
        assert time.monotonic() < deadline, "Flower did not switch the worker's task events on"
        time.sleep(0.2)
    batch_id = store_running_batch(pipeline_settings, CARDS)
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": ROWS}
    with httpx.Client(base_url=url, auth=(FLOWER_USER, FLOWER_PASSWORD)) as flower_api:
        messages = math.ceil(ROWS / rows_per_message(pipeline_settings.centrapay_rate_per_second))
        tasks = _row_tasks(flower_api, messages)
        assert {task["name"] for task in tasks.values()} == {"distributor.load_and_transfer"}
        assert all(f"'batch_id': {batch_id}" in str(task["kwargs"]) for task in tasks.values())
        shown_rows = [
            re.search(r"'row_ids': \[([\d, ]+)\]", str(t["kwargs"])) for t in tasks.values()
        ]
        assert sum(len(found.group(1).split(",")) for found in shown_rows if found) == ROWS
        answers = [
            flower_api.get(path)
            for path in [
                "/api/tasks",
                "/api/workers",
                "/tasks",
                *(f"/api/task/info/{task_id}" for task_id in tasks),
                *(f"/task/{task_id}" for task_id in tasks),
            ]
        ]
    assert all(answer.status_code == 200 for answer in answers)
    secrets = {value for row in CARDS for value in (*row, row[2].lstrip("+"))}
    leaked = {secret for secret in secrets for answer in answers if secret in answer.text}
    assert not leaked, f"Flower shows {leaked}"
