"""Private ``redis-server`` and Postgres servers a chaos run may crash without touching the
machine's shared ones: each on a free port, in a temporary directory, removed at the end."""

from __future__ import annotations

import atexit
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

READY_SECONDS = 30.0
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


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
        """pg_ctl start, waiting until it accepts connections.

        ``fsync=off`` is safe here: a crashed server's writes are still in the kernel's
        cache (only the machine crashing loses them). ``synchronous_commit`` stays on, as
        in any deployment: off, an immediate stop throws away commits already answered
        (a row's claim made before its Centrapay call, a sent row), a loss the service is
        not built to survive and a durable Postgres never has.
        """
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c fsync=off"
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

    def crash(self, *, down_seconds: float = 2.0) -> None:
        """Stop at once (-m immediate: no checkpoint, sessions cut, like a power cut), stay
        down ``down_seconds``, start again (with crash recovery)."""
        self.stop("immediate")
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


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A private redis-server for the block; killed at the end."""
    server = PrivateRedis(workdir).start()
    try:
        yield server
    finally:
        server.kill()
