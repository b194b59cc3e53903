"""Prometheus metrics of the process (served at /metrics by the API)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CENTRAPAY_CALLS = Counter(
    "distributor_centrapay_calls_total",
    "Centrapay HTTP calls by endpoint and answer (status code, timeout or connection).",
    ["endpoint", "status"],
)
BUCKET_WAIT = Histogram(
    "distributor_bucket_wait_seconds",
    "Time a Centrapay call waited for a rate-limit token.",
    buckets=(0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ROW_OUTCOMES = Counter(
    "distributor_row_outcomes_total",
    "Row steps finished, by step and outcome.",
    ["step", "outcome"],
)
