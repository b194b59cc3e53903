"""Fault injection: which process faults a run fires, in what order, at what progress, and
what each one does (a worker SIGKILLed, Redis crashed with its data, Postgres stopped
immediately, as by a power cut, then started again)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tests.chaos.config import ChaosConfig
from tests.chaos.measure import EventLog
from tests.chaos.processes import Services
from tests.chaos.servers import PrivatePostgres, PrivateRedis

KILL_WORKER = "kill-worker"
CRASH_REDIS = "crash-redis"
CRASH_POSTGRES = "crash-postgres"


@dataclass(frozen=True)
class Planned:
    """One fault of the schedule: fire ``kind`` once progress reaches ``at_progress``."""

    at_progress: float
    kind: str


def fault_schedule(config: ChaosConfig) -> list[Planned]:
    """The faults in a seeded order, at evenly spread points of the batch's progress."""
    kinds = [KILL_WORKER] * config.kills + [CRASH_REDIS] * config.redis_restarts
    kinds += [CRASH_POSTGRES] * config.postgres_restarts
    random.Random(config.seed).shuffle(kinds)
    if not kinds:
        return []
    if len(kinds) == 1:
        return [Planned((config.first_event_at + config.last_event_at) / 2, kinds[0])]
    step = (config.last_event_at - config.first_event_at) / max(1, len(kinds) - 1)
    return [
        Planned(round(config.first_event_at + i * step, 3), kind) for i, kind in enumerate(kinds)
    ]


def fault_actions(
    config: ChaosConfig,
    *,
    services: Services,
    redis_server: PrivateRedis,
    postgres: PrivatePostgres | None,
    events: EventLog,
    rng: random.Random,
) -> dict[str, Callable[[], None]]:
    """What firing each kind of fault does."""

    def crash_redis() -> None:
        events.add("redis killed (SIGKILL, nothing on disk)")
        redis_server.restart(down_seconds=config.redis_down_seconds)
        events.add("redis up (empty)")

    def crash_postgres() -> None:
        assert postgres is not None
        events.add("postgres stopping (-m immediate)")
        postgres.crash(down_seconds=config.postgres_down_seconds)
        events.add("postgres up (after crash recovery)")

    def kill_worker() -> None:
        services.kill_worker(rng)

    return {KILL_WORKER: kill_worker, CRASH_REDIS: crash_redis, CRASH_POSTGRES: crash_postgres}
