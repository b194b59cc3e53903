"""Load benchmark of the Centrapay sandbox's rate limiter and its once-per-card guarantee.

Starts the sandbox as a separate process (``python -m centrapay_sandbox``) with a
rate limit, drives it from this process with concurrent clients for a bounded time, loading
distinct cards and some repeated ones, and prints JSON figures: configured and measured
accepted rate, deviation, count of 429s, and the most loads of any one card (must be 1).

    .venv/bin/python tests/benchmarks/sandbox_load.py --seconds 10 --rate 100 --clients 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "bench-key"
ACCOUNT_ID = "bench-account"
STARTUP_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
CLIENT_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sandbox(port: int, *, rate: float, burst: int) -> subprocess.Popen[bytes]:
    """The sandbox in its own process, all faults off, one API key."""
    command = [
        sys.executable, "-m", "centrapay_sandbox",
        "--host", "127.0.0.1", "--port", str(port),
        "--rate-limit", str(rate), "--rate-burst", str(burst),
        "--latency-ms", "0", "--fault-5xx", "0", "--fault-timeout", "0",
        "--fault-drop", "0", "--fault-429", "0",
        "--api-key", f"{API_KEY}:{ACCOUNT_ID}",
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"sandbox exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            if httpx.get(base_url + "/_sandbox/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("sandbox did not start in time")


async def drive(
    base_url: str, *, seconds: float, clients: int, repeat_share: float
) -> dict[str, Any]:
    """``clients`` workers loading cards as fast as they are answered, for ``seconds``.

    Each worker has its own connection (one shared httpx pool serialises badly). Only
    answers that arrive within the window count, so the slow tail does not skew the rate.
    """
    statuses: Counter[int] = Counter()
    late = 0
    issued: list[str] = []
    repeated = 0
    # Clients are made before the clock starts: making one takes milliseconds of CPU.
    pool = [
        httpx.AsyncClient(
            base_url=base_url, headers={"x-api-key": API_KEY}, timeout=CLIENT_TIMEOUT_SECONDS
        )
        for _ in range(clients)
    ]
    started = time.monotonic()
    deadline = started + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal repeated, late
        while time.monotonic() < deadline:
            if issued and random.random() < repeat_share:
                card = random.choice(issued)
                repeated += 1
            else:
                card = f"7{len(issued):010d}"
                issued.append(card)
            body = {
                "accountId": ACCOUNT_ID, "category": "giftcard", "type": "epay.nzd.main",
                "issuer": "ezipay", "externalId": card, "pin": "1234",
            }  # fmt: skip
            response = await client.post("/api/external-assets", json=body)
            if time.monotonic() <= deadline:
                statuses[response.status_code] += 1
            else:
                late += 1

    try:
        await asyncio.gather(*(worker(client) for client in pool))
    finally:
        for client in pool:
            await client.aclose()
    return {"statuses": statuses, "late": late, "distinct": len(issued), "repeated": repeated}


def run(
    *, seconds: float, rate: float, burst: int, clients: int, repeat_share: float
) -> dict[str, Any]:
    """Start the sandbox, drive it, read its ledger, stop it; the figures."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_sandbox(port, rate=rate, burst=burst)
    try:
        wait_ready(base_url, process)
        result = asyncio.run(
            drive(base_url, seconds=seconds, clients=clients, repeat_share=repeat_share)
        )
        ledger = httpx.get(base_url + "/_sandbox/ledger", timeout=30).json()
    finally:
        process.terminate()
        process.wait(STOP_TIMEOUT_SECONDS)
    statuses: Counter[int] = result["statuses"]
    accepted = sum(count for status, count in statuses.items() if status != 429)
    measured = accepted / seconds
    return {
        "configuredRate": rate,
        "burst": burst,
        "clients": clients,
        "seconds": seconds,
        "requests": sum(statuses.values()),
        "requestsPerSecond": round(sum(statuses.values()) / seconds, 1),
        "answersAfterWindow": result["late"],
        "accepted": accepted,
        "measuredAcceptedRate": round(measured, 2),
        "deviationPercent": round((measured - rate) / rate * 100, 2),
        "rateLimited429": statuses[429],
        "statusCounts": {str(status): count for status, count in sorted(statuses.items())},
        "distinctCards": result["distinct"],
        "repeatedCardRequests": result["repeated"],
        "maxLoadsOfOneCard": ledger["maxLoads"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--repeat-share", type=float, default=0.2)
    args = parser.parse_args()
    figures = run(
        seconds=args.seconds,
        rate=args.rate,
        burst=args.burst,
        clients=args.clients,
        repeat_share=args.repeat_share,
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
