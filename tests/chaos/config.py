"""What one chaos run is: its size, its processes, the faults it injects, and the service's
settings (the service's own defaults wherever the run has no reason to differ)."""

from __future__ import annotations

from dataclasses import dataclass, field

from distributor.config import Settings

SANDBOX_KEY = "sandbox-key"
SANDBOX_ACCOUNT = "sandbox-account"
SECRET_KEY = "chaos-secret-key-0123456789abcdef-0123456789"

CLIENT_TIMEOUT_SECONDS = 1.0
FAULTS: dict[str, float] = {
    "fault5xx": 0.05,  # answered 500/502/503, not applied
    "faultTimeout": 0.05,  # applied, then the answer withheld past the client's timeout
    "fault429": 0.02,  # answered 429 (Retry-After: 1), not applied
    "faultDrop": 0.0,
    "latencyMs": 20.0,
    "timeoutHoldSeconds": 2.0,  # just above CENTRAPAY_TIMEOUT_SECONDS
}
"""The sandbox's faults, on every /api request of the run."""
NO_FAULTS: dict[str, float] = {
    "fault5xx": 0.0,
    "faultTimeout": 0.0,
    "fault429": 0.0,
    "faultDrop": 0.0,
    "latencyMs": 0.0,
}


@dataclass(frozen=True, kw_only=True)
class ChaosConfig:
    """One chaos run: size, processes, faults to inject and the service's settings."""

    rows: int
    workers: int = 2
    concurrency: int = 8
    kills: int = 3
    redis_restarts: int = 1
    postgres_restarts: int = 0
    seed: int = 1
    rate_per_second: float = 100.0
    burst: int = 20
    lease_seconds: float | None = None
    """None: the service's default (LEASE_SECONDS)."""
    sweep_interval_seconds: float | None = None
    """None: the service's default (SWEEP_INTERVAL_SECONDS)."""
    max_auto_retries: int = 3
    retry_backoff_seconds: float = 0.2
    retry_backoff_max_seconds: float = 2.0
    first_event_at: float = 0.1
    """Progress (rows sent or failed / rows) at which the first planned fault fires."""
    last_event_at: float = 0.7
    min_event_gap_seconds: float = 3.0
    redis_down_seconds: float = 1.0
    postgres_down_seconds: float = 2.0
    settle_timeout_seconds: float = 600.0
    give_up_after_stall_seconds: float = 120.0
    """Stop waiting when the counts by state have not changed for this long: rows are stuck."""
    redis_restart_on_requeue: bool = False
    """Crash Redis at the worst moment rather than at its progress point alone: once the
    sweeper has requeued a row whose lease ran out (a killed worker's row), while that
    message waits in the queue. Waits at most ``requeue_wait_seconds`` for the moment."""
    requeue_wait_seconds: float = 30.0
    faults: dict[str, float] = field(default_factory=lambda: dict(FAULTS))


def service_settings(
    config: ChaosConfig, *, database_url: str, redis_url: str, sandbox_url: str
) -> Settings:
    """The workers' and beat's settings for a chaos run."""
    chosen: dict[str, float] = {}
    if config.lease_seconds is not None:
        chosen["lease_seconds"] = config.lease_seconds
    if config.sweep_interval_seconds is not None:
        chosen["sweep_interval_seconds"] = config.sweep_interval_seconds
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=redis_url,
        centrapay_base_url=sandbox_url,
        centrapay_api_key=SANDBOX_KEY,  # type: ignore[arg-type]
        centrapay_account_id=SANDBOX_ACCOUNT,
        distributor_secret_key=SECRET_KEY,  # type: ignore[arg-type]
        centrapay_timeout_seconds=CLIENT_TIMEOUT_SECONDS,
        centrapay_rate_per_second=config.rate_per_second,
        centrapay_burst=config.burst,
        max_auto_retries=config.max_auto_retries,
        retry_backoff_seconds=config.retry_backoff_seconds,
        retry_backoff_max_seconds=config.retry_backoff_max_seconds,
        worker_concurrency=config.concurrency,
        **chosen,
    )
