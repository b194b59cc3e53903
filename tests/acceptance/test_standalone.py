"""``distributor run``: a whole batch in one process, with no Postgres or Redis at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from centrapay_sandbox import SandboxSettings
from centrapay_sandbox.server import SandboxHandle, running_sandbox
from tests.acceptance.conftest import assert_each_sent_once
from tests.processes import run_distributor

DEMO_PINS = ("73315", "73316", "73317")
DEMO_CARDS = ("23408800101", "23408800102", "23408800103")
DEMO_CSV = "recipientAlias,cardNumber,pin,message\n" + "".join(
    f"+6422123{index}234,{card},{pin},Hello number {index}\n"
    for index, (card, pin) in enumerate(zip(DEMO_CARDS, DEMO_PINS, strict=True))
)
FIRST_SEND_TIMEOUT_SECONDS = 60.0
UNREACHABLE = {
    "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/nothing",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CENTRAPAY_", "DISTRIBUTOR_", "SANDBOX_"))
    }
    return env | UNREACHABLE | {"COLUMNS": "120"} | extra


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_distributor("run", *args, cwd=tmp_path, env=_env(**env))


def test_a_demo_file_runs_to_completion_without_postgres_or_redis(tmp_path: Path) -> None:
    (tmp_path / "cards.csv").write_text(DEMO_CSV)
    done = _run(tmp_path, "cards.csv")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "local sandbox" in done.stdout
    assert "batch 1: done" in done.stdout
    report = (tmp_path / "cards.report.csv").read_text().splitlines()
    assert len(report) == 4
    assert all(",sent," in line for line in report[1:])
    assert (tmp_path / ".distributor" / "distributor.sqlite3").exists()
    for secret in DEMO_PINS + DEMO_CARDS:
        assert secret not in done.stdout + done.stderr + "\n".join(report)


def test_failed_rows_are_summarised_and_the_exit_code_says_so(tmp_path: Path) -> None:
    (tmp_path / "cards.csv").write_text(DEMO_CSV + "+64221239999,99010000001,1111,wrong pin\n")
    done = _run(tmp_path, "cards.csv")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "UNKNOWN_ASSET" in done.stdout
    assert "UNKNOWN_ASSET" in (tmp_path / "cards.report.csv").read_text()


@pytest.fixture
def slow_sandbox() -> Iterator[SandboxHandle]:
    settings = SandboxSettings(
        _env_file=None,  # type: ignore[call-arg]
        api_keys=["run-key:run-account"],
        latency_ms=150,
    )
    with running_sandbox(settings) as handle:
        yield handle


def _wait_for_a_transfer(sandbox: SandboxHandle, run: subprocess.Popen[str]) -> None:
    """Return once the run has sent its first card: from then on it is mid-batch."""
    deadline = time.monotonic() + FIRST_SEND_TIMEOUT_SECONDS
    with httpx.Client(base_url=sandbox.base_url + "/_sandbox") as control:
        while not any(
            card["transfers"] for card in control.get("/ledger").json()["cards"].values()
        ):
            assert run.poll() is None, "the run ended before it was interrupted"
            assert time.monotonic() < deadline, "the run sent no card"
            time.sleep(0.05)


def test_an_interrupted_run_goes_on_with_batch_and_sends_each_card_once(
    tmp_path: Path, slow_sandbox: SandboxHandle
) -> None:
    cards = [f"234099{index:05d}" for index in range(40)]
    rows = "".join(f"+64221{index:06d},{card},1234,hi\n" for index, card in enumerate(cards))
    (tmp_path / "cards.csv").write_text(rows)
    centrapay = {
        "CENTRAPAY_BASE_URL": slow_sandbox.base_url,
        "CENTRAPAY_API_KEY": "run-key",
        "CENTRAPAY_ACCOUNT_ID": "run-account",
        "CENTRAPAY_RATE_PER_SECOND": "20",
        "WORKER_CONCURRENCY": "4",
    }
    first = subprocess.Popen(
        [sys.executable, "-m", "distributor", "run", "cards.csv"],
        cwd=tmp_path,
        env=_env(**centrapay),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for_a_transfer(slow_sandbox, first)
    first.send_signal(signal.SIGINT)
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 1, output
    assert "run again with --batch 1" in output
    resumed = _run(tmp_path, "cards.csv", "--batch", "1", **centrapay)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "sent  │ 40" in resumed.stdout
    with httpx.Client(base_url=slow_sandbox.base_url + "/_sandbox") as control:
        assert_each_sent_once(control, cards)
