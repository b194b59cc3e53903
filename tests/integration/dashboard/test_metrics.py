"""/metrics over real HTTP: the token, the process counters, the gauges read at scrape time."""

from __future__ import annotations

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from distributor import metrics
from distributor.api.app import create_app
from distributor.config import Settings
from distributor.constants import BatchState
from distributor.ratelimit import bucket_name_for
from distributor.ratelimit.redis import RedisTokenBucket
from tests.conftest import TEST_API_TOKEN
from tests.integration.dashboard.dashboard_helpers import specs, store_batch
from tests.serving import serve_in_thread

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(client: httpx.Client) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic b3A6d3Jvbmc="}],
)
def test_metrics_want_the_bearer_token(base_url: str, headers: dict[str, str]) -> None:
    assert httpx.get(base_url + "/metrics", headers=headers).status_code == 401


def test_metrics_count_rows_by_state_over_all_batches(
    settings: Settings, scraper: httpx.Client
) -> None:
    store_batch(settings, specs(sent=2, pending=3), batch_index=1)
    store_batch(settings, specs(sent=1, failed=4), state=BatchState.DONE, batch_index=2)
    samples = _scrape(scraper)
    assert _value(samples, "distributor_rows", state="sent") == 3
    assert _value(samples, "distributor_rows", state="pending") == 3
    assert _value(samples, "distributor_rows", state="failed") == 4
    assert _value(samples, "distributor_rows", state="invalid") == 0
    assert _value(samples, "distributor_batches", state="running") == 1
    assert _value(samples, "distributor_batches", state="done") == 1


def test_metrics_count_the_rows_of_each_running_batch_only(
    settings: Settings, scraper: httpx.Client
) -> None:
    running = store_batch(settings, specs(sent=2, pending=3), batch_index=1)
    done = store_batch(settings, specs(sent=1), state=BatchState.DONE, batch_index=2)
    samples = _scrape(scraper)
    batch = str(running)
    assert _value(samples, "distributor_batch_rows", batch=batch, state="pending") == 3
    assert _value(samples, "distributor_batch_rows", batch=batch, state="sent") == 2
    assert _value(samples, "distributor_batch_rows", batch=batch, state="failed") == 0
    assert _value(samples, "distributor_batch_rows", batch=str(done), state="sent") is None


def test_metrics_carry_the_process_counters(scraper: httpx.Client) -> None:
    metrics.CENTRAPAY_CALLS.labels(endpoint="metrics-test", status="200").inc()
    samples = _scrape(scraper)
    counted = _value(
        samples, "distributor_centrapay_calls_total", endpoint="metrics-test", status="200"
    )
    assert counted is not None
    assert counted >= 1
    assert ("distributor_bucket_wait_seconds_count", frozenset()) in samples


def test_metrics_show_how_long_the_rate_limit_bucket_makes_calls_wait(
    settings: Settings, scraper: httpx.Client
) -> None:
    assert _value(_scrape(scraper), "distributor_rate_limit_wait_seconds") == 0.0
    assert settings.centrapay_api_key is not None
    rate = settings.centrapay_rate_per_second
    with redis.Redis.from_url(settings.redis_url) as client:
        RedisTokenBucket(
            client,
            name=bucket_name_for(settings.centrapay_api_key.get_secret_value()),
            rate_per_second=rate,
            burst=settings.centrapay_burst,
        ).pause_for(30.0)
    wait = _value(_scrape(scraper), "distributor_rate_limit_wait_seconds")
    assert wait is not None
    assert 25.0 < wait <= 30.0 + 1 / rate  # the bucket resumes empty: one token's time more


def test_metrics_are_served_without_the_bucket_when_redis_is_down(settings: Settings) -> None:
    unreachable = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with (
        serve_in_thread(create_app(unreachable, dispatch=lambda _batch_id: None)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as client,
    ):
        samples = _scrape(client)
    assert _value(samples, "distributor_rows", state="pending") == 0
    assert _value(samples, "distributor_rate_limit_wait_seconds") is None
