"""The chaos soak (issue 7): rows through real workers while everything around them fails.

    .venv/bin/python tests/benchmarks/chaos_soak.py [--rows 1000] [--kills 3]
        [--redis-restarts 1] [--postgres-restarts 1] [--workers 2] [--seed N]
        [--log-dir DIR] [--output FILE]

Runs as root (it needs ``runuser -u postgres`` for its own Postgres cluster). Everything is
private to the run and torn down at the end: a Postgres cluster (initdb in a temporary
directory, a free port), a ``redis-server`` (free port, nothing on disk), the sandbox as a
child process with faults on every ``/api`` request (5% 5xx, 5% applied-then-timed-out
with the answer held 2 s against a 1 s client timeout, 2% 429, 20 ms latency), worker and
beat processes (LEASE_SECONDS 5, SWEEP_INTERVAL_SECONDS 1, MAX_AUTO_RETRIES 3).

While the batch runs, at evenly spread points of its progress (rows sent or failed), in an
order drawn from ``--seed``: a worker is killed with SIGKILL (a replacement started) each
of ``--kills`` times, Redis is crashed and started empty, Postgres is stopped (fast) and
started again (``--redis-on-requeue``: Redis is crashed at the worst moment instead, right
after the sweeper requeued rows whose lease ran out). A worker or beat that dies on its
own is restarted and reported. Then the
script waits until the batch settles, retries the failed rows once (``batch_control.retry``
then ``dispatch``), waits again, and prints one JSON report: rows per final state, loads
and transfers per card from the sandbox's ledger, duplicates, lost rows, failed rows
without an error code, faults injected (from the sandbox's request log), the events with
their times, processes that died, signs of trouble in the logs.

The wait for the batch gives up when no row changed state for ``--give-up-after-stall``
seconds: the rows left are reported as lost, with their history from the worker logs.
Exit status 0 when the target is met (no duplicate, no lost row, every row sent or failed
with a code), 1 otherwise. Logs stay in ``--log-dir`` (default: a new temporary directory).
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


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Set up the private servers, run the soak, tear everything down, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--kills", type=int, default=3, help="workers killed with SIGKILL")
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--postgres-restarts", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
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
        kills=args.kills,
        redis_restarts=args.redis_restarts,
        postgres_restarts=args.postgres_restarts,
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
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if args.output:
        args.output.write_text(text + "\n")
    return 0 if report["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
