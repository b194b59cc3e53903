"""docker-compose.yml starts: every service of our image runs its exact command with its
exact environment (.env.example as its .env) as a local process, in compose's order, and
a CSV uploaded through the api service is sent in full by the worker, via the sandbox."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.deploy.deployfiles import ENV_EXAMPLE, compose, dockerfile_exec_form
from tests.deploy.localcompose import LocalCompose
from tests.processes import free_port

SETTLE_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1
CARDS = [f"2340{index:07d}" for index in range(1, 13)]


def _empty(database_url: str) -> None:
    """Drop the schema, so the migrate service builds it from nothing."""
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture
def stack(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[LocalCompose]:
    """docker-compose.yml as local processes on this test's database, Redis and ports."""
    _empty(database_url)
    running = LocalCompose(
        compose=compose(),
        env_files={".env": ENV_EXAMPLE},
        stand_ins={"postgres": database_url, "redis": redis_url},
        ports={
            "api": (free_port(), "API_PORT"),
            "sandbox": (free_port(), "SANDBOX_PORT"),
            "flower": (free_port(), "FLOWER_PORT"),
        },
        workdir=tmp_path,
    )
    yield running
    running.down()


def _csv() -> bytes:
    lines = ["recipientAlias,cardNumber,pin,message"]
    lines += [f'+6422{i:07d},{card},1234,"Happy birthday, {i}!"' for i, card in enumerate(CARDS)]
    lines.append("not-a-phone,23409999999,1234,never sent")
    return ("\r\n".join(lines) + "\r\n").encode()


def _wait_until_done(api: httpx.Client, batch_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        batch: dict[str, Any] = api.get(f"/batches/{batch_id}").raise_for_status().json()
        if batch["state"] == "done":
            return batch
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"batch {batch_id} is not done: {batch}")


def test_compose_up_starts_every_role_and_a_batch_uploaded_to_the_api_is_sent(
    stack: LocalCompose,
) -> None:
    roles = list(stack.services)
    stack.up(roles)

    migrate = stack.services["migrate"]
    assert migrate.process is not None and migrate.process.returncode == 0
    api_env = stack.services["api"].env
    token = api_env["DISTRIBUTOR_API_TOKENS"].split(",")[0]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.url("api"), headers=headers, timeout=10) as api:
        uploaded = api.post("/batches", files={"file": ("gifts.csv", _csv(), "text/csv")})
        assert uploaded.status_code == 201, uploaded.text
        batch = _wait_until_done(api, uploaded.json()["id"])

    counts = {state: n for state, n in batch["counts"].items() if n}
    assert counts == {"sent": len(CARDS), "invalid": 1}
    ledger = httpx.get(stack.url("sandbox") + "/_sandbox/ledger").json()["cards"]
    sent_once = {card: (ledger[card]["loads"], ledger[card]["transfers"]) for card in CARDS}
    assert sent_once == dict.fromkeys(CARDS, (1, 1))
    image_check = subprocess.run(
        [sys.executable, *dockerfile_exec_form("HEALTHCHECK")[1:]], env=api_env, check=False
    )
    assert image_check.returncode == 0, "the image's HEALTHCHECK fails against the api"
    user, password = stack.services["flower"].env["FLOWER_BASIC_AUTH"].split(":", 1)
    assert httpx.get(stack.url("flower")).status_code == 401
    assert httpx.get(stack.url("flower"), auth=(user, password)).status_code == 200
    still_up = {name: stack.services[name].is_running() for name in roles if name != "migrate"}
    assert still_up == dict.fromkeys(still_up, True)
