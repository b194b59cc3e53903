"""``docker compose up`` without Docker: each service of docker-compose.yml that runs our
image starts as a local process running its exact command, in ``depends_on`` order, and
waits on the same conditions (healthy by its own healthcheck, completed successfully).

Services that run other images (Postgres, Redis) are stood in for by the local servers:
any URL in the environment naming such a service is replaced by the local one's URL, and
URLs naming one of our services point at 127.0.0.1 and the port it got here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.deploy.deployfiles import (
    REPO,
    env_file_values,
    runs_our_image,
    service_env_files,
    service_environment,
    setting_names,
)

WAIT_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.2
CHECK_TIMEOUT_SECONDS = 20.0


@dataclass(kw_only=True)
class LocalService:
    """One compose service running as ``python -m distributor <command>``."""

    name: str
    command: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where its output goes."""
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        """Start the command, its output to its log file."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "distributor", *self.command],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_text(self) -> str:
        """What it printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_running(self) -> bool:
        """True while the process has not exited."""
        return self.process is not None and self.process.poll() is None

    def is_healthy(self) -> bool:
        """True when its healthcheck command exits 0 (run here, as Docker runs it in there)."""
        assert self.healthcheck is not None
        kind, *argv = self.healthcheck
        assert kind == "CMD", f"{self.name}: only exec-form healthchecks run locally"
        program = sys.executable if argv[0] == "python" else argv[0]
        try:
            checked = subprocess.run(
                [program, *argv[1:]],
                env=self.env,
                cwd=self.workdir,
                capture_output=True,
                timeout=CHECK_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return checked.returncode == 0

    def wait_until(self, condition: str) -> None:
        """Block until a ``depends_on`` condition on this service holds."""
        deadline = time.monotonic() + WAIT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            exited = self.process.poll()
            if condition == "service_started" and exited is None:
                return
            if condition == "service_completed_successfully" and exited is not None:
                assert exited == 0, f"{self.name} exited {exited}:\n{self.log_text()[-3000:]}"
                return
            if condition == "service_healthy":
                assert exited is None, f"{self.name} exited {exited}:\n{self.log_text()[-3000:]}"
                if self.is_healthy():
                    return
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"{self.name} never became {condition}:\n{self.log_text()[-3000:]}")

    def terminate(self) -> None:
        """SIGTERM to its process group, as ``docker compose down``, without waiting."""
        if self.is_running():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM to its process group; wait for it to end, SIGKILL if it lingers."""
        self.terminate()
        if self.process is None or self.process.returncode is not None:
            return
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass(kw_only=True)
class LocalCompose:
    """The services of one compose file, as local processes."""

    compose: dict[str, Any]
    env_files: dict[str, Path]
    stand_ins: dict[str, str]
    workdir: Path
    ports: dict[str, tuple[int, str]] = field(default_factory=dict)
    services: dict[str, LocalService] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in self.compose["services"].items():
            if runs_our_image(spec):
                self.services[name] = LocalService(
                    name=name,
                    command=list(spec["command"]),
                    env=self._environment(spec),
                    healthcheck=self._healthcheck(spec),
                    workdir=self.workdir,
                )

    def url(self, service: str) -> str:
        """http://127.0.0.1:PORT of one of our services."""
        return f"http://127.0.0.1:{self.ports[service][0]}"

    def _healthcheck(self, spec: dict[str, Any]) -> list[str] | None:
        check = spec.get("healthcheck") or {}
        return None if check.get("disable") else check.get("test")

    def _environment(self, spec: dict[str, Any]) -> dict[str, str]:
        """Compose's precedence: the service's environment over its env_file(s)."""
        ours = setting_names()
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ours and not name.startswith(("CENTRAPAY_", "DISTRIBUTOR_", "SANDBOX_"))
        }
        for path in service_env_files(spec):
            env |= env_file_values(self.env_files.get(path, REPO / path))
        env |= service_environment(spec)
        env |= {setting: str(port) for port, setting in self.ports.values()}
        # Where beat keeps its schedule (/tmp in the container): this test's own directory.
        env["TMPDIR"] = str(self.workdir)
        return {name: self._localize(value) for name, value in env.items()}

    def _localize(self, value: str) -> str:
        if "://" not in value:
            return value
        parts = urlsplit(value)
        if parts.hostname in self.stand_ins:
            return self.stand_ins[parts.hostname]
        if parts.hostname in self.ports:
            netloc = f"127.0.0.1:{self.ports[parts.hostname][0]}"
            return urlunsplit(parts._replace(netloc=netloc))
        assert parts.hostname not in self.compose["services"], f"no stand-in for {value}"
        return value

    def order(self) -> list[str]:
        """Our services, each after everything it depends on."""
        graph = {name: set(self._depends_on(name)) & set(self.services) for name in self.services}
        return list(TopologicalSorter(graph).static_order())

    def _depends_on(self, name: str) -> dict[str, str]:
        depends = self.compose["services"][name].get("depends_on") or {}
        if isinstance(depends, list):
            return dict.fromkeys(depends, "service_started")
        return {dependency: spec["condition"] for dependency, spec in depends.items()}

    def up(self, names: list[str]) -> None:
        """Start ``names`` in dependency order, each once its dependencies are ready; then wait
        until every one with a healthcheck is healthy (``docker compose up --wait``)."""
        for name in [n for n in self.order() if n in names]:
            for dependency, condition in self._depends_on(name).items():
                if dependency in self.services:
                    assert dependency in names, f"{name} needs {dependency}"
                    self.services[dependency].wait_until(condition)
            self.services[name].start()
        for name in names:
            service = self.services[name]
            if service.healthcheck is not None:
                service.wait_until("service_healthy")

    def down(self) -> None:
        """Stop every service that is still running: all told at once, then each waited for."""
        for service in self.services.values():
            service.terminate()
        for service in self.services.values():
            service.stop()
