"""Real processes for tests: a Celery worker or beat started as ``python -m distributor``,
and a command run to its end."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from distributor.config import Settings

READY_TIMEOUT_SECONDS = 30.0
READY_POLL_SECONDS = 0.05


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment variables that make a child process use ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CENTRAPAY_", "DISTRIBUTOR_"))}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    for field in ("centrapay_api_key", "distributor_secret_key"):
        secret = getattr(settings, field)
        if secret is not None:
            env[field.upper()] = secret.get_secret_value()
    env.update(extra)
    return env


def run_distributor(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``python -m distributor ARGS`` run to its end, its output captured as text, whatever
    its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "distributor", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies, so no orphan keeps consuming
    the test queue after an interrupted run.

    Warning: Linux sends it when the *thread* that started the child ends, so start
    services from a thread that outlives them (the main thread), not from a pool.
    """
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ServiceProcess:
    """A ``distributor`` subcommand running as a child process, logging to a file."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path, ready: str):
        self.args = args
        self.env = env
        self.log_path = log_path
        self.ready = ready
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> ServiceProcess:
        """Start it and wait until its log says it is ready."""
        return self.launch().wait_until_ready()

    def launch(self) -> ServiceProcess:
        """Start it without waiting (see wait_until_ready)."""
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "distributor", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        return self

    def wait_until_ready(self) -> ServiceProcess:
        """Wait until its log, since it was launched, says it is ready."""
        assert self.process is not None, "launch it first"
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.ready in self.log_path.read_text(errors="replace")[self._offset :]:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(READY_POLL_SECONDS)
        raise RuntimeError(f"{self.args} did not start:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process and its children and wait for it to end."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Ask it to stop (SIGTERM), then make sure it has."""
        self.kill(signal.SIGTERM)


def start_together(processes: list[ServiceProcess]) -> list[ServiceProcess]:
    """Launch every process, then wait until each is ready: their start-ups overlap."""
    for process in processes:
        process.launch()
    return [process.wait_until_ready() for process in processes]
