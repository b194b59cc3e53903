"""The chaos soak (issue 7): rows through real workers while everything around them fails.

    .venv/bin/python tests/benchmarks/chaos_soak.py [--rows 10000] [--workers 3]
        [--kills 10] [--redis-crashes 2] [--postgres-crashes 1] [--no-process-faults]
        [--compare-with REPORT.json] [--seed N] [--log-dir DIR] [--output FILE]

Runs as root (it needs ``runuser -u postgres`` for its own Postgres cluster). Everything is
private to the run and torn down at the end: a Postgres cluster (initdb in a temporary
directory, a free port), a ``redis-server`` (free port, nothing on disk), the sandbox as a
child process with faults on every ``/api`` request (5% 5xx, 5% applied-then-timed-out
with the answer held 2 s against a 1 s client timeout, 2% 429, 20 ms latency), worker and
beat processes with the service's default LEASE_SECONDS and SWEEP_INTERVAL_SECONDS
(MAX_AUTO_RETRIES 3).

While the batch runs, at evenly spread points of its progress (rows sent or failed), in an
order drawn from ``--seed``: a worker is killed with SIGKILL (a replacement started) each
of ``--kills`` times, Redis is killed (its data gone) and started empty, Postgres is
stopped with ``-m immediate`` and started again (``--redis-on-requeue``: Redis is crashed
at the worst moment instead, right after the sweeper requeued rows whose lease ran out).
``--no-process-faults`` runs the same batch with the sandbox's faults only: its throughput
is the baseline; ``--compare-with`` that run's report puts the ratio in this one. A worker
or beat that dies on its own is restarted and reported. Then the script waits until the
batch settles, retries the failed rows once, waits again, and prints one JSON report: the
recovery time of each fault (seconds until the rows settled per second are back to 80% of
the rate before it), the throughput, rows per final state, loads and transfers per card
from the sandbox's ledger, duplicates, lost rows, rows whose state disagrees with what the
sandbox holds, faults injected, the events with their times, processes that died, signs
of trouble in the logs.

Exit status 0 when the target is met (no duplicate, no lost or disagreeing row, every row
sent or failed with a code, every recovery within 15 s, and with ``--compare-with`` a
throughput at least 60% of the baseline's), 1 otherwise. Logs stay in ``--log-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: tests.*
from distributor.db import dispose_engines
from distributor.migrate import upgrade
from tests.chaos import ChaosConfig, PrivatePostgres, PrivateRedis, run_chaos

THROUGHPUT_SHARE = 0.6
"""With process faults, the batch must keep this share of the baseline's throughput."""


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Set up the private servers, run the soak, tear everything down, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=10, help="workers killed with SIGKILL")
    parser.add_argument("--redis-crashes", type=int, default=2)
    parser.add_argument("--postgres-crashes", type=int, default=1)
    parser.add_argument(
        "--no-process-faults",
        action="store_true",
        help="no kill or crash, the sandbox's faults only: the throughput baseline",
    )
    parser.add_argument("--compare-with", type=Path, help="the report of a --no-process-faults run")
    parser.add_argument("--min-event-gap", type=float, default=8.0, help="seconds between faults")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--rate", type=float, default=100.0, help="CENTRAPAY_RATE_PER_SECOND")
    parser.add_argument("--settle-timeout", type=float, default=900.0, help="seconds per phase")
    parser.add_argument(
        "--give-up-after-stall",
        type=float,
        default=120.0,
        help="stop waiting when no row changed state for this many seconds (stuck rows)",
    )
    parser.add_argument(
        "--redis-on-requeue",
        action="store_true",
        help="crash Redis right after the sweeper requeued a killed worker's rows",
    )
    parser.add_argument("--log-dir", type=Path, help="where the children's logs go (kept)")
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: the private Postgres cluster is run as the postgres user")
    signal.signal(signal.SIGTERM, _exit_on_signal)
    config = ChaosConfig(
        rows=args.rows,
        workers=args.workers,
        concurrency=args.concurrency,
        kills=0 if args.no_process_faults else args.kills,
        redis_restarts=0 if args.no_process_faults else args.redis_crashes,
        postgres_restarts=0 if args.no_process_faults else args.postgres_crashes,
        min_event_gap_seconds=args.min_event_gap,
        seed=args.seed,
        rate_per_second=args.rate,
        settle_timeout_seconds=args.settle_timeout,
        give_up_after_stall_seconds=args.give_up_after_stall,
        redis_restart_on_requeue=args.redis_on_requeue,
    )
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="chaos-soak-logs-"))
    postgres = PrivatePostgres()
    redis_server = PrivateRedis(log_dir / "redis")
    try:
        postgres.init()
        database_url = postgres.create_database("chaos")
        upgrade(database_url)
        redis_server.start()
        report = run_chaos(
            config,
            database_url=database_url,
            redis_server=redis_server,
            postgres=postgres,
            log_dir=log_dir,
        )
    finally:
        dispose_engines()
        redis_server.kill()
        postgres.destroy()
    if args.compare_with:
        baseline = json.loads(args.compare_with.read_text())["throughput"]["rowsPerSecond"]
        ratio = report["throughput"]["rowsPerSecond"] / baseline if baseline else 0.0
        report["throughput"]["baselineRowsPerSecond"] = baseline
        report["throughput"]["ratioToBaseline"] = round(ratio, 3)
        report["target"]["throughputAtLeast60PercentOfBaseline"] = ratio >= THROUGHPUT_SHARE
        report["target"]["met"] = report["target"]["met"] and ratio >= THROUGHPUT_SHARE
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if args.output:
        args.output.write_text(text + "\n")
    return 0 if report["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
