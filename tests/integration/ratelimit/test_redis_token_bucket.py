"""What only the Redis bucket has to get right: its hash, its TTL, shared state, failing closed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from distributor.constants import BUCKET_KEY_PREFIX
from distributor.errors import BucketUnavailable
from distributor.ratelimit import TokenBucket, bucket_name_for
from distributor.ratelimit.redis import RedisTokenBucket

MakeRedisBucket = Callable[..., RedisTokenBucket]


def redis_now_us(client: redis.Redis[Any]) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def test_the_key_is_the_prefix_and_the_name_derived_from_the_credential(
    make_redis_bucket: MakeRedisBucket,
) -> None:
    bucket = make_redis_bucket(rate_per_second=1, burst=1, name=bucket_name_for("ck_secret"))

    assert bucket.key == BUCKET_KEY_PREFIX + bucket_name_for("ck_secret")
    assert "ck_secret" not in bucket.key


def test_the_state_is_one_hash_with_token_counts_kept_as_exact_decimal_strings(
    make_redis_bucket: MakeRedisBucket, redis_client: redis.Redis[Any]
) -> None:
    bucket = make_redis_bucket(rate_per_second=0.5, burst=1)

    bucket.pause_for(1.25)

    state = redis_client.hgetall(bucket.key)
    assert set(state) == {b"tokens", b"ts"}
    assert state[b"tokens"] == b"-0.625"
    assert bucket.wait_time() == pytest.approx(1.25 + 2, abs=0.01)


def test_the_key_lives_about_twice_the_time_the_bucket_takes_to_refill(
    make_redis_bucket: MakeRedisBucket, redis_client: redis.Redis[Any]
) -> None:
    bucket = make_redis_bucket(rate_per_second=10, burst=20)  # 2 s from empty to full

    bucket.reserve(max_wait_seconds=0)

    assert 3_900 <= redis_client.pttl(bucket.key) <= 4_000


def test_the_key_outlives_a_pause_and_the_calls_already_promised(
    make_redis_bucket: MakeRedisBucket, redis_client: redis.Redis[Any]
) -> None:
    bucket = make_redis_bucket(rate_per_second=10, burst=20)

    bucket.pause_for(60)

    assert redis_client.pttl(bucket.key) >= 2 * 60_000


def test_wait_time_writes_nothing(
    make_redis_bucket: MakeRedisBucket, redis_client: redis.Redis[Any]
) -> None:
    bucket = make_redis_bucket(rate_per_second=10, burst=20)

    assert bucket.wait_time() == 0
    assert not redis_client.exists(bucket.key)


def test_a_timestamp_in_the_future_counts_as_no_time_passed_rather_than_draining_the_bucket(
    make_redis_bucket: MakeRedisBucket, redis_client: redis.Redis[Any]
) -> None:
    bucket = make_redis_bucket(rate_per_second=10, burst=5)
    # What a failover to a Redis whose clock is ten seconds behind would leave behind.
    future = redis_now_us(redis_client) + 10_000_000
    redis_client.hset(bucket.key, mapping={"tokens": "2", "ts": str(future)})

    waits = [bucket.reserve(max_wait_seconds=1).wait_seconds for _ in range(3)]

    assert waits == pytest.approx([0, 0, 0.1], abs=0.02)
    assert int(redis_client.hget(bucket.key, "ts") or 0) < future


def test_a_pause_by_one_client_holds_back_every_client_of_the_same_bucket(
    make_redis_bucket: MakeRedisBucket, redis_client: redis.Redis[Any]
) -> None:
    name = f"shared-{uuid.uuid4().hex}"
    settings = redis_client.connection_pool.connection_kwargs
    clients = [redis.Redis(**settings) for _ in range(3)]  # separate connections, as on hosts
    try:
        pauser, *others = (
            make_redis_bucket(rate_per_second=50, burst=10, name=name, client=client)
            for client in clients
        )

        pauser.pause_for(5)

        for other in others:
            refused = other.reserve(max_wait_seconds=4.9)
            assert not refused.granted
            assert refused.wait_seconds >= 5
            granted = other.reserve(max_wait_seconds=6)
            assert granted.granted
            assert granted.wait_seconds >= 5
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda bucket: bucket.reserve(max_wait_seconds=60),
        lambda bucket: bucket.pause_for(1),
        lambda bucket: bucket.wait_time(),
    ],
    ids=["reserve", "pause_for", "wait_time"],
)
def test_an_unreachable_redis_fails_closed_with_bucket_unavailable(
    call: Callable[[TokenBucket], object],
) -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    bucket = RedisTokenBucket(client, name="unreachable", rate_per_second=100, burst=100)

    with pytest.raises(BucketUnavailable) as raised:
        call(bucket)

    assert isinstance(raised.value.__cause__, redis.ConnectionError)
