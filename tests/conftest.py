"""Shared fixtures: a real Postgres database per test (copied from a template that Alembic
builds once per pytest process), a real Redis database, and settings pointing at both."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from distributor.centrapay.sandbox.server import SandboxHandle, running_sandbox
from distributor.config import SandboxSettings, Settings
from distributor.db import dispose_engines
from distributor.migrate import upgrade

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_URL_BASE = os.environ.get("TEST_PG_URL_BASE", "postgresql+psycopg://postgres@127.0.0.1:5432/")
TEST_REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379")
REDIS_TEST_DATABASES = (15, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"
TEST_API_TOKEN = "test-api-token"
SANDBOX_ACCOUNT = "sandbox-account"
SANDBOX_KEY = "sandbox-key"


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated to head by Alembic, used as the template for each test's copy."""
    name = f"distributor_tpl_{os.getpid()}"
    _admin(f'DROP DATABASE IF EXISTS "{name}"')
    _admin(f'CREATE DATABASE "{name}"')
    upgrade(PG_URL_BASE + name)
    dispose_engines()
    yield name
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(template_database: str) -> Iterator[str]:
    """A fresh database of the current schema, dropped after the test."""
    name = f"distributor_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield PG_URL_BASE + name
    dispose_engines()
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    """A Redis database of this pytest process alone, held by a lock file for the session.

    Test runs in parallel on one machine (developers, CI) would otherwise flush each
    other's queues. Database 0 is left for people, 14 for the rate-limit tests.
    """
    for number in REDIS_TEST_DATABASES:
        lock = Path(tempfile.gettempdir()) / f"distributor-test-redis-{number}.lock"
        handle = lock.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield f"{TEST_REDIS_SERVER}/{number}"
        finally:
            handle.close()
        return
    raise RuntimeError("every test Redis database is taken by another pytest run")


@pytest.fixture
def redis_url(redis_base_url: str) -> Iterator[str]:
    """This process's test Redis database, flushed before and after the test."""
    client = redis.Redis.from_url(redis_base_url)
    client.flushdb()
    yield redis_base_url
    client.flushdb()
    client.close()


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    """Settings for a test: its own database, the test Redis, known secrets, no .env file."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=redis_url,
        distributor_secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
        distributor_api_tokens=[TEST_API_TOKEN],
        centrapay_api_key=SANDBOX_KEY,  # type: ignore[arg-type]
        centrapay_account_id=SANDBOX_ACCOUNT,
    )


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    """A sandbox on a free loopback port with the account of ``settings``, no faults yet."""
    sandbox_settings = SandboxSettings(
        _env_file=None,  # type: ignore[call-arg]
        api_keys=[f"{SANDBOX_KEY}:{SANDBOX_ACCOUNT}"],
    )
    with running_sandbox(sandbox_settings) as handle:
        yield handle


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """A client for the sandbox's control routes (/_sandbox/...)."""
    with httpx.Client(base_url=sandbox.base_url + "/_sandbox") as client:
        yield client
