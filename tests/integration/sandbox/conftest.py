"""A real sandbox server on a loopback port, shared by the sandbox tests and reset around
each one, and webhook receivers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from centrapay_sandbox import SandboxHandle, SandboxSettings, running_sandbox
from centrapay_sandbox.recipients import recipient_account_id
from tests.integration.sandbox.sandbox_helpers import (
    BOB_KEY,
    BOB_PHONE,
    DATA,
    DOC_ACCOUNT,
    DOC_KEY,
    NEVER_CLAIMS_KEY,
    NEVER_CLAIMS_PHONE,
    OTHER_ACCOUNT,
    OTHER_KEY,
    PAGE_SIZE,
    TOKEN_ACCOUNT,
    TOKEN_KEY,
    WebhookReceiver,
    client_for,
)


@pytest.fixture(scope="session")
def sandbox_settings() -> SandboxSettings:
    """The shared sandbox's settings: the docs' accounts, the test catalogue, small pages."""
    return SandboxSettings(
        _env_file=None,
        cards=DATA / "cards.json",
        page_size=PAGE_SIZE,
        api_keys=[
            f"{DOC_KEY}:{DOC_ACCOUNT}",
            f"{TOKEN_KEY}:{TOKEN_ACCOUNT}",
            f"{OTHER_KEY}:{OTHER_ACCOUNT}",
            f"{BOB_KEY}:{recipient_account_id(BOB_PHONE)}",
            f"{NEVER_CLAIMS_KEY}:{recipient_account_id(NEVER_CLAIMS_PHONE)}",
        ],
    )


@pytest.fixture(scope="session")
def sandbox_server(sandbox_settings: SandboxSettings) -> Iterator[SandboxHandle]:
    """One sandbox for the whole session."""
    with running_sandbox(sandbox_settings) as handle:
        yield handle


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> Iterator[SandboxHandle]:
    """The shared sandbox, reset before and after the test."""
    httpx.post(sandbox_server.base_url + "/_sandbox/reset").raise_for_status()
    yield sandbox_server
    httpx.post(sandbox_server.base_url + "/_sandbox/reset").raise_for_status()


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """A client of the docs' account (key ``1234``)."""
    with client_for(sandbox) as client:
        yield client


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """A client of the control routes (no key)."""
    with client_for(sandbox, key=None) as client:
        yield client


@pytest.fixture
def webhooks() -> Iterator[WebhookReceiver]:
    """A webhook receiver answering 204."""
    receiver = WebhookReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def failing_webhooks() -> Iterator[WebhookReceiver]:
    """A webhook receiver answering 500 to everything."""
    receiver = WebhookReceiver(fail=True)
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
