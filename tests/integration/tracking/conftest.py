"""A real sandbox per test, and pipeline contexts that call it through an in-process bucket."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from centrapay_sandbox.server import SandboxHandle
from distributor.config import Settings
from distributor.pipeline.context import PipelineContext, build_context
from distributor.ratelimit.local import LocalTokenBucket
from tests.conftest import SANDBOX_ACCOUNT

MakeContext = Callable[..., PipelineContext]


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
