"""A real sandbox per test, and pipeline contexts that call it through an in-process bucket."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from distributor.centrapay.sandbox.server import SandboxHandle, running_sandbox
from distributor.config import SandboxSettings, Settings
from distributor.pipeline.context import PipelineContext, build_context
from distributor.ratelimit.local import LocalTokenBucket

SANDBOX_ACCOUNT = "sandbox-account"
SANDBOX_KEY = "sandbox-key"

MakeContext = Callable[..., PipelineContext]


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    """A sandbox on a free loopback port with the account of the ``settings`` fixture."""
    settings = SandboxSettings(
        _env_file=None,
        api_keys=[f"{SANDBOX_KEY}:{SANDBOX_ACCOUNT}"],
    )
    with running_sandbox(settings) as handle:
        yield handle


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """A client for the sandbox's control routes (/_sandbox/...)."""
    with httpx.Client(base_url=sandbox.base_url + "/_sandbox") as client:
        yield client


@pytest.fixture
def tracking_settings(settings: Settings, sandbox: SandboxHandle) -> Settings:
    """The test's settings, calling the sandbox."""
    return settings.model_copy(
        update={"centrapay_base_url": sandbox.base_url, "centrapay_account_id": SANDBOX_ACCOUNT}
    )


@pytest.fixture
def make_context(tracking_settings: Settings) -> Iterator[MakeContext]:
    """Make pipeline contexts on the sandbox; a roomy bucket unless given one. Closed after."""
    made: list[PipelineContext] = []

    def make(
        bucket: LocalTokenBucket | None = None, *, token_wait_max_seconds: float = 5.0
    ) -> PipelineContext:
        settings = tracking_settings.model_copy(
            update={"token_wait_max_seconds": token_wait_max_seconds}
        )
        ctx = build_context(
            settings,
            bucket=bucket or LocalTokenBucket(rate_per_second=1000.0, burst=100),
            base_url=tracking_settings.centrapay_base_url or "",
        )
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def ctx(make_context: MakeContext) -> PipelineContext:
    """A pipeline context on the sandbox with plenty of tokens."""
    return make_context()
