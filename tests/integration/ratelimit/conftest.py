"""Buckets on the real Redis (database 14), each under a fresh name and deleted afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from distributor.ratelimit.redis import RedisTokenBucket

REDIS_URL = os.environ.get("TEST_REDIS_URL_RATELIMIT", "redis://127.0.0.1:6379/14")

MakeRedisBucket = Callable[..., RedisTokenBucket]


@pytest.fixture
def redis_client() -> Iterator[redis.Redis[Any]]:
    """A client on the rate-limit test database; other suites share the server, so no flush."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def make_redis_bucket(redis_client: redis.Redis[Any]) -> Iterator[MakeRedisBucket]:
    """Make Redis buckets under a fresh name each (or a given one); their keys go at teardown."""
    keys: list[str] = []

    def make(
        *,
        rate_per_second: float,
        burst: int,
        name: str | None = None,
        client: redis.Redis[Any] | None = None,
    ) -> RedisTokenBucket:
        bucket = RedisTokenBucket(
            client or redis_client,
            name=name or f"test-{uuid.uuid4().hex}",
            rate_per_second=rate_per_second,
            burst=burst,
        )
        keys.append(bucket.key)
        return bucket

    yield make
    if keys:
        redis_client.delete(*keys)
