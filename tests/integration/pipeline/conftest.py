"""A worker's pipeline context on the test's sandbox, and the real queue watch on the test
Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from centrapay_sandbox.server import SandboxHandle
from distributor.broker import RedisQueueWatch
from distributor.config import Settings
from distributor.constants import QUEUE_SENTINEL_KEY
from distributor.pipeline.context import PipelineContext, build_context
from distributor.ratelimit.local import LocalTokenBucket


@pytest.fixture
def ctx(settings: Settings, sandbox: SandboxHandle) -> Iterator[PipelineContext]:
    """A pipeline context on the sandbox with plenty of tokens, as a worker's."""
    bucket = LocalTokenBucket(rate_per_second=1000, burst=100)
    context = build_context(settings, bucket=bucket, base_url=sandbox.base_url)
    yield context
    context.close()


@pytest.fixture
def watch(redis_url: str) -> Iterator[RedisQueueWatch]:
    """The real watch on the test Redis, whose queue is intact (rebuilt before)."""
    redis.Redis.from_url(redis_url).set(QUEUE_SENTINEL_KEY, "intact")
    watch = RedisQueueWatch(redis_url)
    yield watch
    watch.close()
