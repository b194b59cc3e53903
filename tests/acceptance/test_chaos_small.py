"""The chaos soak in small (issue 7): 400 rows against a faulty sandbox, a worker killed
with SIGKILL and Redis crashed mid-batch, then the failed rows retried once. Each card is
loaded and transferred at most once, and every row ends sent, or failed with a code.

Redis is crashed at the worst moment: once the killed worker's leases have run out and
before its rows are taken again, while their only way back is the sweeper's message
(sent, or about to be). A worker
that dies of the crash on its own (Celery on Redis can: "Unrecoverable error" on a lost
connection) is restarted, as compose and Kubernetes do; the report lists it.

The full soak (10,000 rows, three workers, ten kills, two Redis and one Postgres crash) is
``tests/benchmarks/chaos_soak.py``; both share ``tests/chaos/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.chaos import ChaosConfig, private_redis, run_chaos

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server for a private Redis"
)

CONFIG = ChaosConfig(
    rows=400,
    workers=2,
    concurrency=8,
    kills=1,
    redis_restarts=1,
    postgres_restarts=0,
    seed=7,
    first_event_at=0.15,
    last_event_at=0.2,
    min_event_gap_seconds=2.0,
    settle_timeout_seconds=90.0,
    give_up_after_stall_seconds=40.0,
    redis_restart_on_requeue=True,
    requeue_wait_seconds=20.0,
    lease_seconds=5.0,
    sweep_interval_seconds=1.0,
)


@pytest.mark.timeout(240)
def test_a_worker_kill_and_a_redis_crash_under_faults_send_no_card_twice_and_lose_no_row(
    database_url: str, tmp_path: Path
) -> None:
    with private_redis(tmp_path / "redis") as redis_server:
        report = run_chaos(
            CONFIG,
            database_url=database_url,
            redis_server=redis_server,
            postgres=None,
            log_dir=tmp_path / "logs",
        )
    print(json.dumps(report, indent=1))  # the whole report, shown when the test fails
    keys = ("phases", "rowsByState", "duplicates", "lost", "failedByCode", "processDeaths")
    shown = json.dumps({key: report[key] for key in keys} | {"events": report["events"]})
    first = report["phases"]["firstRun"]
    assert report["duplicates"]["count"] == 0, shown
    assert report["lost"]["count"] == 0, shown
    assert report["failedWithoutCode"] == 0, shown
    assert first["settled"] and report["phases"]["afterRetry"]["settled"], shown
    assert set(report["rowsByState"]) <= {"sent", "failed"}, shown
    assert sum(report["rowsByState"].values()) == CONFIG.rows, shown
    assert first["faultsFired"] == ["kill-worker", "crash-redis"], shown
    assert report["disagreesWithSandbox"]["count"] == 0, shown
    assert [f["fault"] for f in report["recoveries"]["faults"]] == first["faultsFired"], shown
    crash = next(e for e in report["events"] if e["event"] == "fire crash-redis")
    assert crash.get("expiredLeases"), f"Redis was not crashed at the moment: {crash}"
    assert {"5xx", "timeout", "429"} <= set(report["sandbox"]["faults"]), shown
