"""Prometheus metrics: this process's counters, and gauges read at scrape time.

The gauges come from the database (rows and batches by state, rows of each running batch)
and from the rate-limit bucket (the wait for a token, one read-only script call). Like the
rest of the API, /metrics wants ``Authorization: Bearer <token>`` (Prometheus:
``authorization: {credentials_file: ...}`` in the scrape config).

Warning: the counters are this process's own. With Celery the Centrapay calls happen in
the worker processes, so the API's counters stay at zero there; in the standalone mode
everything runs in one process and they are complete.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import redis
from fastapi import APIRouter, Response
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.orm import Session

from distributor import progress
from distributor.api.deps import Authorized, SessionDep, SettingsDep
from distributor.config import Settings
from distributor.constants import RowState
from distributor.errors import BucketUnavailable
from distributor.ratelimit import bucket_name_for
from distributor.ratelimit.redis import RedisTokenBucket

logger = logging.getLogger(__name__)

BUCKET_PEEK_TIMEOUT_SECONDS = 0.5
"""A scrape does not hang on an unreachable Redis: the wait gauge is left out instead."""

router = APIRouter(tags=["metrics"], dependencies=[Authorized])


@lru_cache(maxsize=4)
def _bucket(redis_url: str, name: str, rate_per_second: float, burst: int) -> RedisTokenBucket:
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=BUCKET_PEEK_TIMEOUT_SECONDS,
        socket_connect_timeout=BUCKET_PEEK_TIMEOUT_SECONDS,
    )
    return RedisTokenBucket(client, name=name, rate_per_second=rate_per_second, burst=burst)


def bucket_wait(settings: Settings) -> float | None:
    """Seconds until the Centrapay bucket would grant a token; None if unknown."""
    if settings.centrapay_api_key is None:
        return None
    bucket = _bucket(
        settings.redis_url,
        bucket_name_for(settings.centrapay_api_key.get_secret_value()),
        settings.centrapay_rate_per_second,
        settings.centrapay_burst,
    )
    try:
        return bucket.wait_time()
    except BucketUnavailable as exc:
        logger.warning("metrics: cannot read the rate-limit bucket: %s", exc)
        return None


def scrape_registry(session: Session, settings: Settings) -> CollectorRegistry:
    """A registry of the gauges read now from the database and the bucket."""
    registry = CollectorRegistry()
    rows = Gauge("distributor_rows", "Rows of all batches by state.", ["state"], registry=registry)
    for state, count in progress.rows_by_state(session).items():
        rows.labels(state=state).set(count)
    batch_rows = Gauge(
        "distributor_batch_rows",
        "Rows of each running batch by state.",
        ["batch", "state"],
        registry=registry,
    )
    for batch_id, counts in progress.running_rows_by_state(session).items():
        for state in RowState:
            batch_rows.labels(batch=str(batch_id), state=state).set(counts.get(state, 0))
    batches = Gauge("distributor_batches", "Batches by state.", ["state"], registry=registry)
    for state, count in progress.batches_by_state(session).items():
        batches.labels(state=state).set(count)
    wait = bucket_wait(settings)
    if wait is not None:
        Gauge(
            "distributor_rate_limit_wait_seconds",
            "Seconds until the Centrapay rate-limit bucket would grant a token.",
            registry=registry,
        ).set(wait)
    return registry


@router.get("/metrics", response_class=Response)
def metrics(session: SessionDep, settings: SettingsDep) -> Response:
    """Prometheus text: the process counters, then the gauges read at scrape time."""
    body = generate_latest(REGISTRY) + generate_latest(scrape_registry(session, settings))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
