"""Process control: the sandbox, worker and beat processes of a run, started, SIGKILLed,
replaced when they die on their own (as compose and Kubernetes would), and recorded."""

from __future__ import annotations

import os
import random
import signal
from contextlib import suppress
from pathlib import Path
from typing import Any

from distributor.config import Settings
from tests.chaos.config import SANDBOX_ACCOUNT, SANDBOX_KEY
from tests.chaos.measure import EventLog
from tests.processes import ServiceProcess, service_env


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
