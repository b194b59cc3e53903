"""Chaos for the whole service, shared by ``tests/benchmarks/chaos_soak.py`` (1,000 rows, a
private Postgres restarted mid-run) and ``tests/acceptance/test_chaos_small.py`` (CI).

The parts: private ``redis-server`` and Postgres servers that can be restarted without
touching the machine's shared ones; the sandbox as a child process with injected faults;
worker and beat processes that are killed and replaced; a fault schedule fired at spread-out
moments of the batch's progress; and an audit that judges the end state from Postgres, the
sandbox's ledger, its request log and its API (the transfers and assets it holds).

Exactly once is judged where the money is: the sandbox's ledger counts loads and transfers
per card number, whatever the rows say.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import redis
from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError

from distributor.batches import batch_counts
from distributor.broker import CeleryRowQueue, make_celery
from distributor.config import Settings
from distributor.constants import IN_FLIGHT_STATES, UNSETTLED_STATES, RowState
from distributor.db import session_scope
from distributor.models import Row
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow
from distributor.pipeline.queueing import dispatch
from distributor.vault import vault_from_settings
from tests.factories import store_running_batch
from tests.processes import ServiceProcess, service_env

T = TypeVar("T")

SANDBOX_KEY = "sandbox-key"
SANDBOX_ACCOUNT = "sandbox-account"
SECRET_KEY = "chaos-secret-key-0123456789abcdef-0123456789"
CARD_PREFIX = "2340"  # the sandbox loads these with any PIN

CLIENT_TIMEOUT_SECONDS = 1.0
FAULTS: dict[str, float] = {
    "fault5xx": 0.05,  # answered 500/502/503, not applied
    "faultTimeout": 0.05,  # applied, then the answer withheld past the client's timeout
    "fault429": 0.02,  # answered 429 (Retry-After: 1), not applied
    "faultDrop": 0.0,
    "latencyMs": 20.0,
    "timeoutHoldSeconds": 2.0,  # just above CENTRAPAY_TIMEOUT_SECONDS
}
NO_FAULTS: dict[str, float] = {
    "fault5xx": 0.0,
    "faultTimeout": 0.0,
    "fault429": 0.0,
    "faultDrop": 0.0,
    "latencyMs": 0.0,
}
SUSPECT_CODES = ("ASSET_ALREADY_TRANSFERRED", "DUPLICATE_ASSET")
"""Failure codes that mean the pipeline itself sent a card a second time (the sandbox
refused it): not a duplicate at Centrapay, but a second attempt that should not happen."""

READY_SECONDS = 30.0
POLL_SECONDS = 0.2
STALL_SECONDS = 45.0
PROGRESS_SAMPLE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1


# --- small helpers ------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def card_number(index: int) -> str:
    """An 11-digit card number the sandbox loads with any PIN."""
    return f"{CARD_PREFIX}{index:07d}"


def with_db(call: Callable[[], T], *, patience: float = 120.0) -> T:
    """``call()``, tried again while the database is unreachable (restarting) for a while."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return call()
        except (OperationalError, InterfaceError, psycopg.OperationalError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class EventLog:
    """What happened when: seconds since the start and wall-clock time, in order."""

    def __init__(self, *, echo: bool = True) -> None:
        self.started = time.monotonic()
        self.items: list[dict[str, Any]] = []
        self.echo = echo

    def elapsed(self) -> float:
        """Seconds since the log started."""
        return time.monotonic() - self.started

    def add(self, event: str, **details: Any) -> dict[str, Any]:
        """Record ``event`` now."""
        item = {
            "t": round(self.elapsed(), 2),
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event,
            **details,
        }
        self.items.append(item)
        if self.echo:
            extra = " ".join(f"{k}={v}" for k, v in details.items())
            print(f"[chaos {item['t']:7.2f}s] {event} {extra}", file=sys.stderr, flush=True)
        return item


# --- private servers ----------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of our own on a free port, keeping nothing on disk (like production
    here): a restart is a crash and an empty server on the same port."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "redis.log"

    def url(self, db: int = 0) -> str:
        """The URL of database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _options(self) -> list[str]:
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": str(self.workdir),
            "loglevel": "warning",
        }
        return [part for name, value in options.items() for part in (f"--{name}", value)]

    def start(self) -> PrivateRedis:
        """Start it and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", *self._options()],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + READY_SECONDS
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {self.log_path.read_text()}")
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """Crash it (SIGKILL): every key is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, down_seconds: float = 1.0) -> None:
        """Crash it, stay down a moment, start an empty one on the same port."""
        self.kill()
        time.sleep(down_seconds)
        self.start()


class PrivatePostgres:
    """A Postgres cluster of our own (initdb in a temporary directory, on a free port) that
    can be restarted; removed by ``destroy`` (also at exit)."""

    def __init__(self, *, bin_dir: Path | None = None, port: int | None = None) -> None:
        self.bin_dir = bin_dir or _postgres_bin_dir()
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        owner = pwd.getpwnam("postgres")
        os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._destroyed = False
        atexit.register(self.destroy)

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def init(self) -> PrivatePostgres:
        """initdb, then start."""
        initdb = str(self.bin_dir / "initdb")
        self._as_postgres(
            initdb,
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
            "-D",
            str(self.data),
        )
        self.start()
        return self

    def start(self) -> None:
        """pg_ctl start, waiting until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c fsync=off -c synchronous_commit=off"
        )
        pg_ctl = str(self.bin_dir / "pg_ctl")
        self._as_postgres(
            pg_ctl,
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-o",
            options,
        )

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m ``mode`` (fast: sessions are ended, a clean shutdown)."""
        self._as_postgres(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
        )

    def restart(self, *, down_seconds: float = 2.0) -> None:
        """Stop (fast), stay down ``down_seconds``, start again."""
        self.stop("fast")
        time.sleep(down_seconds)
        self.start()

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; its URL."""
        dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop it at once and remove its directory (idempotent)."""
        if self._destroyed:
            return
        self._destroyed = True
        if (self.data / "postmaster.pid").exists():
            pg_ctl = str(self.bin_dir / "pg_ctl")
            self._as_postgres(pg_ctl, "stop", "-m", "immediate", "-D", str(self.data), check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError("no Postgres server binaries under /usr/lib/postgresql")
    return found[-1].parent


# --- the system under test ----------------------------------------------------------------


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
    lease_seconds: float = 5.0
    sweep_interval_seconds: float = 1.0
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
    """Stop waiting when the counts by state have not changed for this long: rows are stuck
    (leases are seconds, the sweeper's requeue of lost messages 30 s)."""
    redis_restart_on_requeue: bool = False
    """Crash Redis at the worst moment rather than at its progress point alone: once the
    sweeper has requeued a row whose lease ran out (a killed worker's row), while that
    message waits in the queue. Waits at most ``requeue_wait_seconds`` for the moment."""
    requeue_wait_seconds: float = 30.0
    faults: dict[str, float] = field(default_factory=lambda: dict(FAULTS))


@dataclass(frozen=True)
class Planned:
    """One fault of the schedule: fire ``kind`` once progress reaches ``at_progress``."""

    at_progress: float
    kind: str  # "kill-worker", "restart-redis", "restart-postgres"


def fault_schedule(config: ChaosConfig) -> list[Planned]:
    """The faults in a seeded order, at evenly spread points of the batch's progress."""
    kinds = ["kill-worker"] * config.kills + ["restart-redis"] * config.redis_restarts
    kinds += ["restart-postgres"] * config.postgres_restarts
    random.Random(config.seed).shuffle(kinds)
    if len(kinds) == 1:
        return [Planned((config.first_event_at + config.last_event_at) / 2, kinds[0])]
    step = (config.last_event_at - config.first_event_at) / max(1, len(kinds) - 1)
    return [
        Planned(round(config.first_event_at + i * step, 3), kind) for i, kind in enumerate(kinds)
    ]


def service_settings(
    config: ChaosConfig, *, database_url: str, redis_url: str, sandbox_url: str
) -> Settings:
    """The workers' and beat's settings for a chaos run."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=redis_url,
        centrapay_base_url=sandbox_url,
        centrapay_api_key=SANDBOX_KEY,
        centrapay_account_id=SANDBOX_ACCOUNT,
        distributor_secret_key=SECRET_KEY,
        centrapay_timeout_seconds=CLIENT_TIMEOUT_SECONDS,
        centrapay_rate_per_second=config.rate_per_second,
        centrapay_burst=config.burst,
        lease_seconds=config.lease_seconds,
        sweep_interval_seconds=config.sweep_interval_seconds,
        max_auto_retries=config.max_auto_retries,
        retry_backoff_seconds=config.retry_backoff_seconds,
        retry_backoff_max_seconds=config.retry_backoff_max_seconds,
        worker_concurrency=config.concurrency,
    )


def start_sandbox(*, port: int, log_path: Path) -> ServiceProcess:
    """``python -m distributor sandbox`` in its own process, no faults yet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env["SANDBOX_API_KEYS"] = f"{SANDBOX_KEY}:{SANDBOX_ACCOUNT}"
    process = ServiceProcess(
        ["sandbox", "--port", str(port)], env=env, log_path=log_path, ready="Uvicorn running on"
    )
    return process.start()


class Services:
    """The worker and beat processes of a run: started, killed, replaced, watched."""

    def __init__(
        self, settings: Settings, *, concurrency: int, log_dir: Path, events: EventLog
    ) -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.log_dir = log_dir
        self.events = events
        self.workers: list[ServiceProcess] = []
        self.beat: ServiceProcess | None = None
        self.retired: list[ServiceProcess] = []
        self.deaths: list[dict[str, Any]] = []
        self._spawned = 0

    def all(self) -> list[ServiceProcess]:
        """Every process started, running or not."""
        return [*self.retired, *self.workers, *([self.beat] if self.beat else [])]

    def start_worker(self) -> ServiceProcess:
        """One more worker, logging to its own file."""
        name = f"worker-{self._spawned}"
        self._spawned += 1
        worker = ServiceProcess(
            ["worker", "--concurrency", str(self.concurrency), "--loglevel", "INFO"],
            env=service_env(self.settings),
            log_path=self.log_dir / f"{name}.log",
            ready="ready.",
        )
        self.workers.append(worker)
        return worker.start()

    def start_beat(self) -> ServiceProcess:
        """Beat (the sweeper); one only."""
        if self.beat is not None:
            self.retired.append(self.beat)
        self.beat = ServiceProcess(
            ["beat", "--schedule-file", str(self.log_dir / "beat-schedule")],
            env=service_env(self.settings),
            log_path=self.log_dir / f"beat-{len(self.retired)}.log",
            ready="beat: Starting",
        )
        return self.beat.start()

    def kill_worker(self, rng: random.Random) -> str:
        """SIGKILL one worker at random and start a replacement; the victim's log name."""
        victim = self.workers.pop(rng.randrange(len(self.workers)))
        self.retired.append(victim)
        pid = victim.process.pid if victim.process else None
        victim.kill(signal.SIGKILL)
        self.events.add("worker killed", pid=pid, log=victim.log_path.name)
        replacement = self.start_worker()
        self.events.add("replacement worker ready", log=replacement.log_path.name)
        return victim.log_path.name

    def supervise(self) -> None:
        """Restart any worker or beat that died on its own, and record it as a finding."""
        for index, worker in enumerate(list(self.workers)):
            if worker.process is not None and worker.process.poll() is not None:
                self._died(worker)
                self.workers.pop(index)
                self.retired.append(worker)
                self.start_worker()
        beat = self.beat
        if beat is not None and beat.process is not None and beat.process.poll() is not None:
            self._died(beat)
            self.start_beat()

    def _died(self, process: ServiceProcess) -> None:
        assert process.process is not None
        tail = process.log_text()[-2000:]
        death = self.events.add(
            "process died on its own; restarted",
            log=process.log_path.name,
            returncode=process.process.returncode,
        )
        self.deaths.append({**death, "logTail": tail})

    def stop_all(self) -> None:
        """Stop every process still running."""
        for process in self.all():
            with suppress(Exception):
                process.kill(signal.SIGKILL)


# --- the batch ----------------------------------------------------------------------------


def store_batch(settings: Settings, cards: Sequence[str]) -> int:
    """A running batch with one pending row per card, each to its own phone."""
    rows = [(card, "1234", f"+6422{line:07d}") for line, card in enumerate(cards, start=1)]
    return store_running_batch(settings, rows)


def dispatch_rows(settings: Settings, batch_id: int) -> int:
    """Put the batch's ready rows on the queue (a fresh Celery app: Redis may be new)."""
    celery = make_celery(settings)
    try:
        return dispatch(
            database_url=settings.database_url, queue=CeleryRowQueue(celery), batch_id=batch_id
        )
    finally:
        celery.close()


def rows_by_state(settings: Settings, batch_id: int) -> dict[str, int]:
    """The batch's non-zero counts by state (waits out a database restart)."""

    def read() -> dict[str, int]:
        with session_scope(settings.database_url) as session:
            return {k: v for k, v in batch_counts(session, batch_id).items() if v}

    return with_db(read)


def requeued_expired_leases(settings: Settings, batch_id: int) -> int:
    """Rows in flight whose lease ran out and that the sweeper has enqueued again since:
    their only way back is that message."""

    def read() -> int:
        now = utcnow()
        query = (
            select(func.count())
            .select_from(Row)
            .where(
                Row.batch_id == batch_id,
                Row.state.in_(IN_FLIGHT_STATES),
                Row.lease_until < now,
                Row.enqueued_at >= Row.lease_until,
            )
        )
        with session_scope(settings.database_url) as session:
            return int(session.scalar(query) or 0)

    return with_db(read)


def retry_failed(settings: Settings, batch_id: int) -> batch_control.RetryResult:
    """``batch_control.retry`` of every failed row of the batch."""

    def run() -> batch_control.RetryResult:
        with session_scope(settings.database_url) as session:
            return batch_control.retry(
                session, batch_id=batch_id, vault=vault_from_settings(settings), now=utcnow()
            )

    return with_db(run)


@dataclass(kw_only=True)
class Phase:
    """How one wait for the batch to settle went."""

    counts: dict[str, int]
    settled: bool
    seconds: float
    fired: list[str]
    skipped: list[str]


def drive(
    settings: Settings,
    batch_id: int,
    *,
    total: int,
    schedule: list[Planned],
    actions: dict[str, Callable[[], None]],
    services: Services,
    events: EventLog,
    timeout: float,
    min_gap: float,
    give_up_after_stall: float,
    progress: list[dict[str, Any]] | None = None,
    gate: Callable[[str], dict[str, Any] | None] | None = None,
    gate_wait: float = 0.0,
) -> Phase:
    """Wait until the batch settles, firing the schedule's faults as progress passes them,
    restarting processes that died, noting stalls. Never raises on a timeout or a stall:
    the audit says what was left.

    ``gate(kind)``, when given, holds a due fault back until it returns details of the
    moment (a dict), for at most ``gate_wait`` seconds."""
    started = time.monotonic()
    pending = list(schedule)
    fired: list[str] = []
    last_fired = 0.0
    last_change = time.monotonic()
    last_counts: dict[str, int] = {}
    stalled = False
    last_sample = 0.0
    due_since: float | None = None
    while True:
        services.supervise()
        counts = rows_by_state(settings, batch_id)
        done = counts.get(RowState.SENT, 0) + counts.get(RowState.FAILED, 0)
        settled = not any(counts.get(state, 0) for state in UNSETTLED_STATES)
        now = time.monotonic()
        if progress is not None and (now - last_sample >= PROGRESS_SAMPLE_SECONDS or settled):
            last_sample = now
            progress.append({"t": round(events.elapsed(), 1), **counts})
        if counts != last_counts:
            last_counts, last_change, stalled = counts, now, False
        elif not settled and not stalled and now - last_change > STALL_SECONDS:
            stalled = True
            events.add("no progress", seconds=round(now - last_change), counts=counts)
        due = pending and not settled and done / total >= pending[0].at_progress
        if due and now - last_fired >= min_gap:
            due_since = now if due_since is None else due_since
            moment = gate(pending[0].kind) if gate else {}
            if moment is None and now - due_since >= gate_wait:
                moment = {"gate": "waited in vain"}
            if moment is not None:
                planned = pending.pop(0)
                due_since = None
                events.add(
                    f"fire {planned.kind}",
                    progress=round(done / total, 3),
                    counts=counts,
                    **moment,
                )
                actions[planned.kind]()
                fired.append(planned.kind)
                last_fired = time.monotonic()
                continue
        if settled:
            skipped = [p.kind for p in pending]
            if skipped:
                events.add("batch settled before these faults fired", skipped=skipped)
            return Phase(
                counts=counts, settled=True, seconds=now - started, fired=fired, skipped=skipped
            )
        stuck = now - last_change > give_up_after_stall
        if now - started > timeout or stuck:
            events.add("gave up waiting", counts=counts, stuck=stuck)
            return Phase(
                counts=counts,
                settled=False,
                seconds=now - started,
                fired=fired,
                skipped=[p.kind for p in pending],
            )
        time.sleep(POLL_SECONDS)


# --- the audit ----------------------------------------------------------------------------


def _api_pages(client: httpx.Client, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
    page_key: str | None = None
    while True:
        query = dict(params, pageKey=page_key) if page_key else params
        answer = client.get(path, params=query)
        answer.raise_for_status()
        body = answer.json()
        yield from body.get("items", [])
        page_key = body.get("nextPageKey")
        if not page_key:
            return


def sandbox_holdings(base_url: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """What Centrapay holds, read through its API (faults must be off): our transfers'
    ids by asset id, and our account's active assets by card number."""
    headers = {"X-Api-Key": SANDBOX_KEY}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        transfers: dict[str, list[str]] = {}
        for item in _api_pages(
            client, "/api/asset-transfers", {"senderAccountId": SANDBOX_ACCOUNT}
        ):
            transfers.setdefault(str(item.get("assetId")), []).append(str(item["id"]))
        assets = {
            str(item.get("externalId")): str(item["id"])
            for item in _api_pages(client, f"/api/accounts/{SANDBOX_ACCOUNT}/assets", {})
            if item.get("externalId")
        }
    return transfers, assets


@dataclass(frozen=True, kw_only=True)
class RowRecord:
    """A row as the audit needs it, card number in clear (test cards only)."""

    id: int
    line_no: int
    card: str
    state: str
    error_code: str | None
    retryable: bool
    asset_id: str | None
    transfer_id: str | None
    load_attempts: int
    transfer_attempts: int
    lease_until: str | None
    not_before: str | None
    enqueued_at: str | None
    updated_at: str | None


def read_rows(settings: Settings, batch_id: int) -> list[RowRecord]:
    """Every row of the batch, card numbers decrypted."""
    vault = vault_from_settings(settings)

    def read() -> list[RowRecord]:
        with session_scope(settings.database_url) as session:
            rows = session.scalars(select(Row).where(Row.batch_id == batch_id).order_by(Row.id))
            return [
                RowRecord(
                    id=row.id,
                    line_no=row.line_no,
                    card=vault.decrypt(row.card_number_enc or b""),
                    state=row.state,
                    error_code=row.error_code,
                    retryable=row.retryable,
                    asset_id=row.asset_id,
                    transfer_id=row.transfer_id,
                    load_attempts=row.load_attempts,
                    transfer_attempts=row.transfer_attempts,
                    lease_until=_iso(row.lease_until),
                    not_before=_iso(row.not_before),
                    enqueued_at=_iso(row.enqueued_at),
                    updated_at=_iso(row.updated_at),
                )
                for row in rows
            ]

    return with_db(read)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def row_history(row_id: int, logs: Sequence[Path]) -> list[str]:
    """Every line the workers logged about row ``row_id``, log by log."""
    pattern = re.compile(rf"\brow {row_id}\b|'row_id': {row_id}\b")
    lines: list[str] = []
    for path in logs:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if pattern.search(line):
                    lines.append(f"{path.name}: {line.strip()}")
    return lines


LOG_SIGNS = {
    "tracebacks": "Traceback (most recent call last)",
    "taskErrors": "raised unexpected",
    "brokerConnectionLost": "Connection to broker lost",
    "brokerCannotConnect": "Cannot connect to redis",
    "leaseLost": "lease lost during",
    "operationalErrors": "OperationalError",
}


def log_signs(logs: Sequence[Path]) -> dict[str, dict[str, int]]:
    """How often each sign of trouble appears in each service log (zeros left out)."""
    found: dict[str, dict[str, int]] = {}
    for path in logs:
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        counts = {name: text.count(sign) for name, sign in LOG_SIGNS.items()}
        counts = {name: count for name, count in counts.items() if count}
        if counts:
            found[path.name] = counts
    return found


def fault_counts(requests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Faults the sandbox injected, by kind and by call, from its request log."""
    by_kind = Counter(str(r["fault"]) for r in requests if r["fault"])
    by_call: dict[str, Counter[str]] = {}
    for r in requests:
        if r["fault"]:
            call = f"{r['method']} /api/{r['path'].split('/')[2]}"
            by_call.setdefault(call, Counter())[str(r["fault"])] += 1
    statuses = Counter(str(r["status"]) for r in requests)
    return {
        "requests": len(requests),
        "faults": dict(sorted(by_kind.items())),
        "faultsTotal": sum(by_kind.values()),
        "faultsByCall": {call: dict(sorted(c.items())) for call, c in sorted(by_call.items())},
        "requestsByStatus": dict(sorted(statuses.items())),
    }


def audit(
    rows: Sequence[RowRecord],
    *,
    ledger: dict[str, dict[str, int]],
    transfers_by_asset: dict[str, list[str]],
    assets_by_card: dict[str, str],
    logs: Sequence[Path],
) -> dict[str, Any]:
    """The verdict: duplicates, lost rows, failed rows without a code, and the rest."""
    empty = {"loads": 0, "repeatLoads": 0, "transfers": 0}
    per_card = {row.card: ledger.get(row.card, empty) for row in rows}
    duplicates = [
        {"card": card, **counts}
        for card, counts in per_card.items()
        if counts["loads"] > 1 or counts["transfers"] > 1
    ]
    unsettled = [row for row in rows if row.state not in (RowState.SENT, RowState.FAILED)]
    sent = [row for row in rows if row.state == RowState.SENT]
    sent_not_transferred = [row for row in sent if per_card[row.card]["transfers"] == 0]
    sent_wrong_transfer = [
        row for row in sent if row.transfer_id not in transfers_by_asset.get(row.asset_id or "", [])
    ]
    failed = [row for row in rows if row.state == RowState.FAILED]
    failed_without_code = [row for row in failed if not row.error_code]
    failed_transferred = [row for row in failed if per_card[row.card]["transfers"] > 0]
    failed_loaded_unknown = [
        row
        for row in failed
        if row.asset_id is None and per_card[row.card]["loads"] > 0 and row.card in assets_by_card
    ]
    suspect = [row for row in failed if row.error_code in SUSPECT_CODES]

    def detail(row: RowRecord) -> dict[str, Any]:
        enqueued_after_lease = bool(
            row.state in IN_FLIGHT_STATES
            and row.enqueued_at
            and row.lease_until
            and row.enqueued_at >= row.lease_until
        )
        return {
            **asdict(row),
            "enqueuedAfterLeaseRanOut": enqueued_after_lease,
            "ledger": per_card[row.card],
            "history": row_history(row.id, logs),
        }

    lost = [*unsettled, *sent_not_transferred, *sent_wrong_transfer]
    return {
        "rowsByState": dict(sorted(Counter(row.state for row in rows).items())),
        "failedByCode": dict(sorted(Counter(str(row.error_code) for row in failed).items())),
        "failedWithoutCode": len(failed_without_code),
        "ledger": {
            "cardsByLoads": _histogram(c["loads"] for c in per_card.values()),
            "cardsByTransfers": _histogram(c["transfers"] for c in per_card.values()),
            "repeatLoads": sum(c["repeatLoads"] for c in per_card.values()),
        },
        "duplicates": {"count": len(duplicates), "cards": duplicates},
        "lost": {
            "count": len({row.id for row in lost}),
            "notSentOrFailed": [detail(row) for row in unsettled],
            "sentButNoTransferAtCentrapay": [detail(row) for row in sent_not_transferred],
            "sentButTransferIdNotThisAssets": [detail(row) for row in sent_wrong_transfer],
        },
        "notes": {
            "failedButTransferredAtCentrapay": [detail(row) for row in failed_transferred],
            "failedRowsWhoseCardIsLoadedInOurAccount": len(failed_loaded_unknown),
            "failedWithCodeOfASecondSend": [detail(row) for row in suspect],
            "rowsWithoutLedgerLoadButSent": sum(
                1 for row in sent if per_card[row.card]["loads"] == 0
            ),
        },
    }


def _histogram(values: Iterator[int] | Sequence[int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(values).items())}


# --- a whole run --------------------------------------------------------------------------


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
        raise ValueError("postgres restarts need a private Postgres")
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

            def restart_redis() -> None:
                events.add("redis down")
                redis_server.restart(down_seconds=config.redis_down_seconds)
                events.add("redis up (empty)")

            def restart_postgres() -> None:
                assert postgres is not None
                events.add("postgres stopping (-m fast)")
                postgres.restart(down_seconds=config.postgres_down_seconds)
                events.add("postgres up")

            def kill_worker() -> None:
                services.kill_worker(rng)

            actions = {
                "kill-worker": kill_worker,
                "restart-redis": restart_redis,
                "restart-postgres": restart_postgres,
            }

            def gate(kind: str) -> dict[str, Any] | None:
                if kind != "restart-redis":
                    return {}
                waiting = requeued_expired_leases(settings, batch_id)
                return {"requeuedExpiredLeases": waiting} if waiting else None

            schedule = fault_schedule(config)
            events.add("schedule", planned=[f"{p.kind}@{p.at_progress}" for p in schedule])
            progress: list[dict[str, Any]] = []
            started = time.monotonic()
            dispatched = dispatch_rows(settings, batch_id)
            events.add("dispatched", rows=dispatched)
            first = drive(
                settings,
                batch_id,
                total=config.rows,
                schedule=schedule,
                actions=actions,
                services=services,
                events=events,
                timeout=config.settle_timeout_seconds,
                min_gap=config.min_event_gap_seconds,
                give_up_after_stall=config.give_up_after_stall_seconds,
                progress=progress,
                gate=gate if config.redis_restart_on_requeue else None,
                gate_wait=config.requeue_wait_seconds,
            )
            events.add("settled", counts=first.counts, settled=first.settled)
            retried = retry_failed(settings, batch_id)
            events.add(
                "retry failed rows", retried=len(retried.retried), refused=len(retried.refused)
            )
            redispatched = dispatch_rows(settings, batch_id)
            events.add("dispatched", rows=redispatched)
            second = drive(
                settings,
                batch_id,
                total=config.rows,
                schedule=[],
                actions=actions,
                services=services,
                events=events,
                timeout=config.settle_timeout_seconds,
                min_gap=config.min_event_gap_seconds,
                give_up_after_stall=config.give_up_after_stall_seconds,
                progress=progress,
            )
            wall = time.monotonic() - started
            events.add("settled", counts=second.counts, settled=second.settled)
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
    ok = (
        verdict["duplicates"]["count"] == 0
        and verdict["lost"]["count"] == 0
        and verdict["failedWithoutCode"] == 0
        and first.settled
        and second.settled
    )
    return {
        "rows": config.rows,
        "seed": config.seed,
        "config": {
            "workers": config.workers,
            "concurrency": config.concurrency,
            "kills": config.kills,
            "redisRestarts": config.redis_restarts,
            "postgresRestarts": config.postgres_restarts,
            "leaseSeconds": config.lease_seconds,
            "redisRestartOnRequeue": config.redis_restart_on_requeue,
            "sweepIntervalSeconds": config.sweep_interval_seconds,
            "maxAutoRetries": config.max_auto_retries,
            "retryBackoffSeconds": [config.retry_backoff_seconds, config.retry_backoff_max_seconds],
            "centrapayTimeoutSeconds": CLIENT_TIMEOUT_SECONDS,
            "bucket": {"ratePerSecond": config.rate_per_second, "burst": config.burst},
            "sandboxFaults": config.faults,
        },
        "wallSeconds": round(wall, 1),
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
            "everyFailedRowHasACode": verdict["failedWithoutCode"] == 0,
            "met": ok,
        },
    }


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A private redis-server for the block; killed at the end."""
    server = PrivateRedis(workdir).start()
    try:
        yield server
    finally:
        server.kill()
