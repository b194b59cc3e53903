"""Chaos for the whole service, shared by ``tests/benchmarks/chaos_soak.py`` (10,000 rows,
three workers, kills, Redis and Postgres crashes) and ``tests/acceptance/test_chaos_small.py``
(CI), one concept per module:

- ``servers``: private ``redis-server`` and Postgres servers that can be crashed without
  touching the machine's shared ones;
- ``processes``: the sandbox, worker and beat processes, killed and replaced;
- ``faults``: the seeded schedule of process faults and what each does;
- ``drive``: waiting for the batch while the faults fire;
- ``measure``: the event log, the timeline of settled rows, recovery times, throughput;
- ``audit``: the verdict from Postgres, the sandbox's ledger, its API, and the logs;
- ``run``: one whole run and its report.
"""

from tests.chaos.config import ChaosConfig
from tests.chaos.run import run_chaos
from tests.chaos.servers import PrivatePostgres, PrivateRedis, private_redis

__all__ = ["ChaosConfig", "PrivatePostgres", "PrivateRedis", "private_redis", "run_chaos"]
