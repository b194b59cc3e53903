"""A whole chaos run: store the batch, start the service, fire the faults, settle, retry the
failed rows once, settle again, audit, and report (JSON-ready)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx

from tests.chaos.audit import audit, fault_counts, log_signs, read_rows, sandbox_holdings
from tests.chaos.batch import (
    card_number,
    dispatch_rows,
    expired_leases,
    retry_failed,
    store_batch,
    wait_for_transfer_ids,
    with_db,
)
from tests.chaos.config import CLIENT_TIMEOUT_SECONDS, NO_FAULTS, ChaosConfig, service_settings
from tests.chaos.drive import drive
from tests.chaos.faults import CRASH_REDIS, fault_actions, fault_schedule
from tests.chaos.measure import RECOVERED_SHARE, EventLog, Timeline, recoveries
from tests.chaos.processes import Services, start_sandbox
from tests.chaos.servers import PrivatePostgres, PrivateRedis, free_port

RECOVERY_TARGET_SECONDS = 15.0
TRANSFER_IDS_TIMEOUT_SECONDS = 60.0
"""How long the audit waits for the sync to find transfer ids whose answers were lost."""


def run_chaos(
    config: ChaosConfig,
    *,
    database_url: str,
    redis_server: PrivateRedis,
    postgres: PrivatePostgres | None,
    log_dir: Path,
    echo: bool = True,
) -> dict[str, Any]:
    """Store ``config.rows`` rows, run them through workers and beat against the faulty
    sandbox while the schedule's faults fire, settle, retry the failed rows once, settle
    again, and audit. The report (JSON-ready)."""
    if config.postgres_restarts and postgres is None:
        raise ValueError("postgres crashes need a private Postgres")
    log_dir.mkdir(parents=True, exist_ok=True)
    events = EventLog(echo=echo)
    rng = random.Random(config.seed)  # the schedule's order and the victims, not the faults
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    settings = service_settings(
        config, database_url=database_url, redis_url=redis_server.url(0), sandbox_url=sandbox_url
    )
    services = Services(settings, concurrency=config.concurrency, log_dir=log_dir, events=events)
    sandbox = start_sandbox(port=port, log_path=log_dir / "sandbox.log")
    timeline = Timeline()
    try:
        with httpx.Client(base_url=sandbox_url + "/_sandbox", timeout=60) as control:
            cards = [card_number(i) for i in range(config.rows)]
            batch_id = with_db(lambda: store_batch(settings, cards))
            events.add("batch stored", batch=batch_id, rows=config.rows)
            for _ in range(config.workers):
                services.start_worker()
            services.start_beat()
            events.add("workers and beat ready", workers=config.workers)
            control.patch("/config", json=config.faults).raise_for_status()
            events.add("faults on", **config.faults)
            actions = fault_actions(
                config,
                services=services,
                redis_server=redis_server,
                postgres=postgres,
                events=events,
                rng=rng,
            )

            def gate(kind: str) -> dict[str, Any] | None:
                if kind != CRASH_REDIS:
                    return {}
                waiting = expired_leases(settings, batch_id)
                return {"expiredLeases": waiting} if waiting else None

            schedule = fault_schedule(config)
            events.add("schedule", planned=[f"{p.kind}@{p.at_progress}" for p in schedule])
            progress: list[dict[str, Any]] = []
            started = time.monotonic()
            first_started_at = events.elapsed()
            dispatched = dispatch_rows(settings, batch_id)
            events.add("dispatched", rows=dispatched)
            common = {
                "total": config.rows,
                "actions": actions,
                "services": services,
                "events": events,
                "timeout": config.settle_timeout_seconds,
                "min_gap": config.min_event_gap_seconds,
                "give_up_after_stall": config.give_up_after_stall_seconds,
                "progress": progress,
            }
            first = drive(
                settings,
                batch_id,
                schedule=schedule,
                timeline=timeline,
                gate=gate if config.redis_restart_on_requeue else None,
                gate_wait=config.requeue_wait_seconds,
                **common,  # type: ignore[arg-type]
            )
            first_settled_at = events.elapsed()
            events.add("settled", counts=first.counts, settled=first.settled)
            retried = retry_failed(settings, batch_id)
            events.add(
                "retry failed rows", retried=len(retried.retried), refused=len(retried.refused)
            )
            redispatched = dispatch_rows(settings, batch_id)
            events.add("dispatched", rows=redispatched)
            second = drive(settings, batch_id, schedule=[], **common)  # type: ignore[arg-type]
            wall = time.monotonic() - started
            events.add("settled", counts=second.counts, settled=second.settled)
            missing = wait_for_transfer_ids(
                settings, batch_id, timeout=TRANSFER_IDS_TIMEOUT_SECONDS
            )
            events.add("transfer ids synced", missing=missing)
            requests = control.get("/ledger/requests").json()["items"]
            ledger = control.get("/ledger").json()["cards"]
            control.patch("/config", json=NO_FAULTS).raise_for_status()
            transfers_by_asset, assets_by_card = sandbox_holdings(sandbox_url)
    finally:
        services.stop_all()
        sandbox.kill()
    rows = read_rows(settings, batch_id)
    logs = [process.log_path for process in services.all()]
    verdict = audit(
        rows,
        ledger=ledger,
        transfers_by_asset=transfers_by_asset,
        assets_by_card=assets_by_card,
        logs=logs,
    )
    faults = recoveries(events.items, timeline, since=first_started_at, until=first_settled_at)
    recovered = [f["recoverySeconds"] for f in faults]
    first_settled_rows = sum(first.counts.values()) - sum(
        first.counts.get(state, 0) for state in ("pending", "loading", "loaded", "transferring")
    )
    throughput = first_settled_rows / first.seconds if first.seconds else 0.0
    process_faults = bool(config.kills or config.redis_restarts or config.postgres_restarts)
    within = all(r is not None and r <= RECOVERY_TARGET_SECONDS for r in recovered)
    ok = (
        verdict["duplicates"]["count"] == 0
        and verdict["lost"]["count"] == 0
        and verdict["disagreesWithSandbox"]["count"] == 0
        and verdict["failedWithoutCode"] == 0
        and first.settled
        and second.settled
        and within
    )
    return {
        "rows": config.rows,
        "seed": config.seed,
        "config": {
            "workers": config.workers,
            "concurrency": config.concurrency,
            "kills": config.kills,
            "redisCrashes": config.redis_restarts,
            "postgresCrashes": config.postgres_restarts,
            "leaseSeconds": settings.lease_seconds,
            "redisRestartOnRequeue": config.redis_restart_on_requeue,
            "sweepIntervalSeconds": settings.sweep_interval_seconds,
            "maxAutoRetries": config.max_auto_retries,
            "retryBackoffSeconds": [config.retry_backoff_seconds, config.retry_backoff_max_seconds],
            "centrapayTimeoutSeconds": CLIENT_TIMEOUT_SECONDS,
            "bucket": {"ratePerSecond": config.rate_per_second, "burst": config.burst},
            "sandboxFaults": config.faults,
        },
        "wallSeconds": round(wall, 1),
        "throughput": {
            "rowsPerSecond": round(throughput, 2),
            "of": "rows settled (sent or failed) in the first run / its seconds",
            "processFaults": process_faults,
        },
        "recoveries": {
            "definition": (
                f"seconds from the fault until the rows settled per second, over "
                f"3 s, are back to {RECOVERED_SHARE:.0%} of the rate in the 10 s before it"
            ),
            "targetSeconds": RECOVERY_TARGET_SECONDS,
            "faults": faults,
            "worstSeconds": max((r for r in recovered if r is not None), default=None),
            "notRecovered": sum(1 for r in recovered if r is None),
        },
        "phases": {
            "firstRun": {
                "seconds": round(first.seconds, 1),
                "settled": first.settled,
                "rowsByState": first.counts,
                "faultsFired": first.fired,
                "faultsSkipped": first.skipped,
            },
            "retry": {"retried": len(retried.retried), "refused": len(retried.refused)},
            "afterRetry": {
                "seconds": round(second.seconds, 1),
                "settled": second.settled,
                "rowsByState": second.counts,
            },
        },
        **verdict,
        "sandbox": fault_counts(requests),
        "processDeaths": services.deaths,
        "logSigns": log_signs(logs),
        "logDir": str(log_dir),
        "events": events.items,
        "progress": progress,
        "target": {
            "zeroDuplicates": verdict["duplicates"]["count"] == 0,
            "zeroLost": verdict["lost"]["count"] == 0,
            "zeroDisagreeingWithSandbox": verdict["disagreesWithSandbox"]["count"] == 0,
            "everyFailedRowHasACode": verdict["failedWithoutCode"] == 0,
            "everyRecoveryWithinTarget": within,
            "met": ok,
        },
    }
