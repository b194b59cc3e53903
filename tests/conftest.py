"""Shared fixtures: a real Postgres database per test (copied from a template that Alembic
builds once per pytest process), a real Redis database, and settings pointing at both."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from distributor.centrapay.sandbox.server import SandboxHandle, running_sandbox
from distributor.config import SandboxSettings, Settings
from distributor.db import dispose_engines
from distributor.migrate import upgrade
from tests.resources import claimed_redis_database, fresh_database

REDIS_TEST_DATABASES = (15, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"
TEST_API_TOKEN = "test-api-token"
SANDBOX_ACCOUNT = "sandbox-account"
SANDBOX_KEY = "sandbox-key"


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated to head by Alembic, used as the template for each test's copy."""
    with fresh_database("distributor_tpl") as url:
        upgrade(url)
        dispose_engines()
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def database_url(template_database: str) -> Iterator[str]:
    """A fresh database of the current schema, dropped after the test."""
    with fresh_database("distributor_t", template=template_database) as url:
        yield url


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    """A Redis database of this pytest process alone, held by a lock file for the session.

    Test runs in parallel on one machine (developers, CI) would otherwise flush each
    other's queues. Database 0 is left for people, 14 for the rate-limit tests.
    """
    with claimed_redis_database(REDIS_TEST_DATABASES) as url:
        yield url


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
def sandbox_api_key() -> str:
    """The API key the sandbox knows for the account of ``settings`` (override to change)."""
    return SANDBOX_KEY


@pytest.fixture
def sandbox(sandbox_api_key: str) -> Iterator[SandboxHandle]:
    """A sandbox on a free loopback port with the account of ``settings``, no faults yet."""
    sandbox_settings = SandboxSettings(
        _env_file=None,  # type: ignore[call-arg]
        api_keys=[f"{sandbox_api_key}:{SANDBOX_ACCOUNT}"],
    )
    with running_sandbox(sandbox_settings) as handle:
        yield handle


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """A client for the sandbox's control routes (/_sandbox/...)."""
    with httpx.Client(base_url=sandbox.base_url + "/_sandbox") as client:
        yield client
