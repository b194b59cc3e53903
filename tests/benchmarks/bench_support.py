"""The parts of a pipeline benchmark: a fresh database and Redis database, the sandbox and
the service as child processes, a batch stored through ingest, and what happened, read
back from Postgres, the sandbox's ledger and request log, and /proc (CPU per process).

Import as ``tests.benchmarks.bench_support`` (the repository root on ``sys.path``).
"""

from __future__ import annotations

import io
import math
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import select

from distributor.batches import batch_counts
from distributor.config import Settings
from distributor.constants import (
    DEFAULT_ASSET_TYPE,
    DEFAULT_ISSUER,
    UNSETTLED_STATES,
    BatchState,
)
from distributor.db import session_scope
from distributor.ingest import BatchOptions, ingest_csv
from distributor.migrate import upgrade
from distributor.models import Batch, Row
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings
from tests.processes import ServiceProcess, service_env
from tests.resources import claimed_redis_database, fresh_database

# The numbers tests/conftest.py claims, with the same lock files, from the other end.
REDIS_DATABASES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15)

SANDBOX_KEY = "sandbox-key"
SANDBOX_ACCOUNT = "sandbox-account"
SECRET_KEY = "benchmark-secret-key-0123456789abcdef-0123"
HTTP_TIMEOUT_SECONDS = 30.0
SANDBOX_READY_SECONDS = 20.0
POLL_SECONDS = 0.25  # the driver polls Postgres; it shares the 2 cores with what it measures
BATCH_CLOSE_GRACE_SECONDS = 20.0  # above SWEEP_INTERVAL_SECONDS: beat closes it too
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- infrastructure -----------------------------------------------------------------------


@contextmanager
def fresh_migrated_database() -> Iterator[str]:
    """A new database migrated to head by Alembic; dropped when the block ends."""
    with fresh_database("distributor_bench") as url:
        upgrade(url)
        yield url


@contextmanager
def claimed_redis() -> Iterator[str]:
    """A Redis database no test run holds (lock file), flushed before and after."""
    with claimed_redis_database(REDIS_DATABASES) as url:
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
            yield url
        finally:
            client.flushdb()
            client.close()


def start_sandbox(
    *, port: int, latency_ms: float, rate_limit: float, rate_burst: int, log_path: Path
) -> ServiceProcess:
    """``python -m distributor sandbox`` in its own process (its own GIL), no faults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env.update(
        SANDBOX_API_KEYS=f"{SANDBOX_KEY}:{SANDBOX_ACCOUNT}",
        SANDBOX_RATE_BURST=str(rate_burst),
        SANDBOX_FAULT_DROP="0",
        SANDBOX_FAULT_429="0",
    )
    args = ["sandbox", "--port", str(port), "--latency-ms", str(latency_ms)]
    args += ["--rate-limit", str(rate_limit), "--fault-5xx", "0", "--fault-timeout", "0"]
    process = ServiceProcess(args, env=env, log_path=log_path, ready="Uvicorn running on")
    return process.start()


def start_workers(
    settings: Settings, *, count: int, concurrency: int, loglevel: str, log_dir: Path
) -> list[ServiceProcess]:
    """``count`` worker processes of ``concurrency`` threads; stop them with ``stop_all``.

    Started one after another from this thread: a child started from a short-lived thread
    would be killed when that thread ends (PR_SET_PDEATHSIG follows the forking thread).
    """
    workers: list[ServiceProcess] = []
    try:
        for index in range(count):
            worker = ServiceProcess(
                ["worker", "--concurrency", str(concurrency), "--loglevel", loglevel],
                env=service_env(settings),
                log_path=log_dir / f"worker-{index}.log",
                ready="ready.",
            )
            workers.append(worker)
            worker.start()
    except BaseException:
        stop_all(workers)
        raise
    return workers


def start_beat(settings: Settings, *, log_dir: Path) -> ServiceProcess:
    """``distributor beat``: the sweeper, as in a real deployment."""
    args = ["beat", "--schedule-file", str(log_dir / "beat-schedule")]
    beat = ServiceProcess(
        args, env=service_env(settings), log_path=log_dir / "beat.log", ready="beat: Starting"
    )
    return beat.start()


def stop_all(processes: Iterable[ServiceProcess]) -> None:
    """Stop each (SIGTERM, then SIGKILL if it lingers); never raises for one that died."""
    for process in processes:
        try:
            process.stop()
        except Exception:  # noqa: S112 - the others must still be stopped
            continue


def service_settings(
    *,
    database_url: str,
    redis_url: str,
    sandbox_url: str,
    rate_per_second: float,
    burst: int,
    concurrency: int,
) -> Settings:
    """The service's settings for a run: this database, Redis db, sandbox and bucket."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=redis_url,
        centrapay_base_url=sandbox_url,
        centrapay_api_key=SANDBOX_KEY,
        centrapay_account_id=SANDBOX_ACCOUNT,
        centrapay_rate_per_second=rate_per_second,
        centrapay_burst=burst,
        distributor_secret_key=SECRET_KEY,
        worker_concurrency=concurrency,
    )


# --- the batch ----------------------------------------------------------------------------


def card_numbers(count: int, *, prefix: str) -> list[str]:
    """``count`` 11-digit card numbers the sandbox loads with any PIN."""
    return [f"{prefix}{index:07d}" for index in range(count)]


def recipient(index: int) -> str:
    """A distinct NZ mobile number in E.164."""
    return f"+6422{index:07d}"


def store_batch(settings: Settings, cards: Sequence[str]) -> int:
    """Upload a CSV of ``cards`` through ``ingest_csv`` and start the batch; its id."""
    lines = ["recipientAlias,cardNumber,pin,message"]
    lines += [f"{recipient(i)},{card},1234,Kia ora {i}" for i, card in enumerate(cards)]
    stream = io.BytesIO(("\r\n".join(lines) + "\r\n").encode())
    options = BatchOptions(
        name="benchmark.csv", asset_type=DEFAULT_ASSET_TYPE, issuer=DEFAULT_ISSUER
    )
    with session_scope(settings.database_url) as session:
        result = ingest_csv(
            stream,
            session=session,
            vault=vault_from_settings(settings),
            options=options,
            max_rows=len(cards),
            pin_required=True,
        )
        if result.counts.get("pending") != len(cards):
            raise RuntimeError(f"not every row is pending: {result.counts}")
        batch_control.start(session, batch_id=result.batch_id, now=utcnow())
    return result.batch_id


def wait_until_settled(settings: Settings, batch_id: int, *, timeout: float) -> dict[str, int]:
    """Poll until no row of the batch is left to work on and the batch is closed (the
    worker closes it in a transaction of its own, just after the last row's); its rows'
    counts by state. Gives up after ``timeout`` seconds, and waits at most
    ``BATCH_CLOSE_GRACE_SECONDS`` for the close once every row is settled."""
    deadline = time.monotonic() + timeout
    settled_at: float | None = None
    while True:
        with session_scope(settings.database_url) as session:
            counts = {k: v for k, v in batch_counts(session, batch_id).items() if v}
            batch_state = session.get_one(Batch, batch_id).state
        if not any(counts.get(state, 0) for state in UNSETTLED_STATES):
            settled_at = settled_at or time.monotonic()
            grace_over = time.monotonic() - settled_at > BATCH_CLOSE_GRACE_SECONDS
            if batch_state != BatchState.RUNNING or grace_over:
                return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch_id} did not settle in {timeout:.0f} s: {counts}")
        time.sleep(POLL_SECONDS)


@dataclass(frozen=True, kw_only=True)
class RowTimes:
    """When each sent row of a batch was loaded and sent, and the batch's final state."""

    loaded_at: list[datetime]
    sent_at: list[datetime]
    batch_state: str


def row_times(settings: Settings, batch_id: int) -> RowTimes:
    """The loaded/sent times of the batch's sent rows, in row order."""
    with session_scope(settings.database_url) as session:
        query = select(Row.loaded_at, Row.sent_at).where(
            Row.batch_id == batch_id, Row.sent_at.is_not(None)
        )
        pairs = [(loaded, sent) for loaded, sent in session.execute(query) if loaded and sent]
        state = session.get_one(Batch, batch_id).state
    return RowTimes(
        loaded_at=[loaded for loaded, _ in pairs],
        sent_at=[sent for _, sent in pairs],
        batch_state=state,
    )


# --- figures ------------------------------------------------------------------------------


def sustained_rate(moments: Sequence[float]) -> float:
    """Events per second between the 5th and 95th percentile moments (warm-up and tail cut).

    The events between the two percentile positions, over the time between them.
    """
    ordered = sorted(moments)
    if len(ordered) < 2:
        return 0.0
    first = math.floor(0.05 * (len(ordered) - 1))
    last = math.ceil(0.95 * (len(ordered) - 1))
    span = ordered[last] - ordered[first]
    return (last - first) / span if span > 0 else 0.0


def per_second(moments: Sequence[float], *, since: float) -> list[int]:
    """How many of ``moments`` fell in each whole second after ``since``: pauses show as dips."""
    counts = Counter(int(moment - since) for moment in moments)
    return [counts.get(second, 0) for second in range(max(counts, default=-1) + 1)]


def percentiles_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of values given in milliseconds."""
    if not values:
        return {}
    if len(values) == 1:
        return {"p50": round(values[0], 1), "p95": round(values[0], 1), "p99": round(values[0], 1)}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1)}


def histogram(values: Iterable[int]) -> dict[str, int]:
    """How many times each value occurs, in order of value, keyed by the value as text."""
    return {str(k): v for k, v in sorted(Counter(values).items())}


def ledger_check(control: httpx.Client, cards: Sequence[str]) -> dict[str, Any]:
    """Loads and transfers per card from the sandbox ledger: how many cards had each count."""
    ledger = control.get("/ledger").json()["cards"]
    empty = {"loads": 0, "repeatLoads": 0, "transfers": 0}
    counts = [ledger.get(card, empty) for card in cards]
    loads = Counter(c["loads"] for c in counts)
    transfers = Counter(c["transfers"] for c in counts)
    return {
        "cardsByLoads": histogram(c["loads"] for c in counts),
        "cardsByTransfers": histogram(c["transfers"] for c in counts),
        "repeatLoads": sum(c["repeatLoads"] for c in counts),
        "eachCardLoadedAndTransferredOnce": loads == {1: len(cards)}
        and transfers == {1: len(cards)},
    }


def request_figures(requests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the sandbox's request log says: statuses, 429 share, durations, concurrency."""
    statuses = Counter(str(r["status"]) for r in requests)
    total = len(requests)
    limited = statuses.get("429", 0)
    answered = [r for r in requests if r["status"] != 429]
    by_kind: dict[str, list[float]] = {}
    for r in answered:
        kind = f"{r['method']} /{'/'.join(r['path'].split('/')[2:3])}"
        by_kind.setdefault(kind, []).append(float(r["durationMs"]))
    return {
        "requests": total,
        "byStatus": dict(sorted(statuses.items())),
        "rateLimited429": limited,
        "share429Percent": round(100 * limited / total, 3) if total else 0.0,
        "durationMsByCall": {kind: percentiles_ms(v) for kind, v in sorted(by_kind.items())},
    }


def busy_in_flight(requests: Sequence[dict[str, Any]], seconds: float) -> float:
    """Requests the sandbox held at once on average (Little's law: busy time / wall time)."""
    return sum(float(r["durationMs"]) for r in requests) / 1000 / seconds if seconds else 0.0


# --- CPU ----------------------------------------------------------------------------------


def _proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def _pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _machine_busy_and_total() -> tuple[float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


class CpuMeter:
    """CPU seconds used by named groups of processes (and the whole machine) over a span."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._start = self._sample()
        self._started = time.monotonic()

    def _sample(self) -> dict[str, float]:
        sample = {
            name: sum(_proc_cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()
        }
        sample["postgres"] = sum(_proc_cpu_seconds(p) for p in _pids_named("postgres"))
        sample["redis"] = sum(_proc_cpu_seconds(p) for p in _pids_named("redis-server"))
        busy, total = _machine_busy_and_total()
        sample["_machineBusy"], sample["_machineTotal"] = busy, total
        return sample

    def stop(self) -> dict[str, Any]:
        """CPU seconds per group since the meter started, and the machine's busy share.

        Postgres counts every backend (other test runs' too), and a backend that ended
        during the span is not counted: an estimate.
        """
        end = self._sample()
        wall = time.monotonic() - self._started
        used = {
            name: round(end[name] - self._start[name], 2)
            for name in end
            if not name.startswith("_")
        }
        busy = end["_machineBusy"] - self._start["_machineBusy"]
        total = end["_machineTotal"] - self._start["_machineTotal"]
        return {
            "wallSeconds": round(wall, 2),
            "cpuSeconds": used,
            "machineBusyPercent": round(100 * busy / total, 1) if total else 0.0,
            "cores": os.cpu_count(),
        }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# --- calls per card -----------------------------------------------------------------------

ID_COLLECTIONS = ("accounts", "assets", "asset-transfers")
"""Path segments after which the next segment is an id (``/api/assets/{id}``)."""


def start_sandbox_with(*, port: int, settings: dict[str, str], log_path: Path) -> ServiceProcess:
    """``python -m distributor sandbox`` in its own process with these SANDBOX_* settings
    (names without the prefix, e.g. ``{"FAULT_5XX": "0.05"}``) over the defaults, the
    benchmark's key included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env["SANDBOX_API_KEYS"] = f"{SANDBOX_KEY}:{SANDBOX_ACCOUNT}"
    env.update({f"SANDBOX_{name}": value for name, value in settings.items()})
    args = ["sandbox", "--port", str(port)]
    process = ServiceProcess(args, env=env, log_path=log_path, ready="Uvicorn running on")
    return process.start()


def endpoint_template(method: str, path: str) -> str:
    """``GET /api/assets/Ab12`` -> ``GET /api/assets/{id}``: a request's endpoint."""
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "api" and parts[1] in ID_COLLECTIONS:
        parts[2] = "{id}"
    return f"{method} /{'/'.join(parts)}"


def calls_by_endpoint(requests: Sequence[dict[str, Any]], *, cards: int) -> dict[str, Any]:
    """How many requests, per card overall and per endpoint; their statuses and faults."""
    endpoints = Counter(endpoint_template(r["method"], r["path"]) for r in requests)
    statuses = Counter(str(r["status"]) for r in requests)
    faults = Counter(str(r["fault"]) for r in requests if r["fault"])
    per_card = (lambda n: round(n / cards, 3)) if cards else (lambda n: 0.0)
    return {
        "calls": len(requests),
        "callsPerCard": per_card(len(requests)),
        "byEndpoint": {
            name: {"calls": count, "perCard": per_card(count)}
            for name, count in sorted(endpoints.items())
        },
        "byStatus": dict(sorted(statuses.items())),
        "byFault": dict(sorted(faults.items())),
    }
