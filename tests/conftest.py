"""Shared fixtures: a real Postgres database per test (a copy of a template that Alembic
builds once per pytest process, emptied and reused), a real Redis database, and settings
pointing at both; under pytest-xdist, a gate that lets ``alone`` tests run by themselves."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from centrapay_sandbox import SandboxSettings
from centrapay_sandbox.server import SandboxHandle, running_sandbox
from distributor.config import Settings
from distributor.db import dispose_engines
from distributor.migrate import upgrade
from tests.resources import DatabaseCopies, TestGate, claimed_redis_database, fresh_database

# pytest-xdist's workers start with the terminal's LINES and COLUMNS exported (by readline,
# which they import), and a Rich console made while COLUMNS is set keeps that width for
# good: the CLI tests would wrap at 80 columns whatever width they ask for.
for _variable in ("COLUMNS", "LINES"):
    os.environ.pop(_variable, None)

REDIS_TEST_DATABASES = (15, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"
TEST_API_TOKEN = "test-api-token"
SANDBOX_ACCOUNT = "sandbox-account"
SANDBOX_KEY = "sandbox-key"

GATE_VARIABLE = "DISTRIBUTOR_TEST_GATE"  # the directory of the run's TestGate, for workers
GATE = pytest.StashKey[TestGate]()
GATE_DIRECTORY = pytest.StashKey[str]()
# Tests of other areas that measure a rate, so must run alone; here until their own
# modules carry ``@pytest.mark.alone``.
RUN_ALONE = {
    "tests/integration/sandbox/test_sandbox_rate_limit.py"
    "::test_under_load_the_accepted_rate_holds_and_no_card_is_loaded_twice",
}


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, one TestGate for the run: the controller makes its directory,
    each worker opens it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        if GATE_VARIABLE in os.environ:
            config.stash[GATE] = TestGate(Path(os.environ[GATE_VARIABLE]))
    elif getattr(config.option, "numprocesses", None):
        directory = tempfile.mkdtemp(prefix="distributor-test-gate-")
        os.environ[GATE_VARIABLE] = config.stash[GATE_DIRECTORY] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the gate, and remove its directory once the run is over."""
    if GATE in config.stash:
        config.stash[GATE].close()
    if GATE_DIRECTORY in config.stash:
        shutil.rmtree(config.stash[GATE_DIRECTORY], ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of RUN_ALONE."""
    for item in items:
        if item.nodeid in RUN_ALONE:
            item.add_marker(pytest.mark.alone)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Each test holds the run's gate, alone when marked ``alone``: outside its timeout, so
    waiting for the gate never counts against a test."""
    if GATE not in item.config.stash:
        return (yield)
    with item.config.stash[GATE].held(alone=item.get_closest_marker("alone") is not None):
        return (yield)


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated to head by Alembic, used as the template for each test's copy."""
    with fresh_database("distributor_tpl") as url:
        upgrade(url)
        dispose_engines()
        yield url.rsplit("/", 1)[1]


@pytest.fixture(scope="session")
def database_copies(template_database: str) -> Iterator[DatabaseCopies]:
    """Copies of the template made ahead of the tests that take them."""
    copies = DatabaseCopies(template_database, prefix="distributor_t")
    yield copies
    copies.close()


@pytest.fixture
def database_url(database_copies: DatabaseCopies) -> Iterator[str]:
    """A fresh database of the current schema, dropped after the test."""
    with database_copies.copy() as url:
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


def settings_for(database_url: str, redis_url: str) -> Settings:
    """Settings on this database and Redis with the test secrets and no .env file."""
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
def settings(database_url: str, redis_url: str) -> Settings:
    """Settings for a test: its own database, the test Redis, known secrets, no .env file."""
    return settings_for(database_url, redis_url)


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
