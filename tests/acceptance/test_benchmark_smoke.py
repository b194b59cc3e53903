"""The pipeline benchmark scripts work end to end on a tiny batch (not timed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "benchmarks" / "pipeline_throughput.py"
ROWS = 40
SEED_ROWS = 10
RUN_TIMEOUT_SECONDS = 240.0
BENCHMARK_TIMEOUT_SECONDS = RUN_TIMEOUT_SECONDS + 60
"""Above the default test timeout: each test runs a benchmark script end to end."""

FIGURES = {
    "scenario",
    "rows",
    "settings",
    "rowsByState",
    "wallSeconds",
    "overallRowsPerSecond",
    "sustainedRowsPerSecond",
    "sandbox",
    "ledger",
    "cpu",
    "exactlyOnce",
    "targetMet",
}


def _objects(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    objects, position = [], 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        found, position = decoder.raw_decode(text, position)
        objects.append(found)
    return objects


@pytest.mark.timeout(BENCHMARK_TIMEOUT_SECONDS)
def test_the_benchmark_script_sends_every_row_exactly_once_and_prints_its_figures() -> None:
    finished = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", str(ROWS), "--seed-rows", str(SEED_ROWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    rate_limited, unthrottled = _objects(finished.stdout)
    assert rate_limited["scenario"] == "rate-limited"
    assert unthrottled["scenario"] == "unthrottled"
    for figures in (rate_limited, unthrottled):
        assert figures.keys() >= FIGURES
        assert figures["rowsByState"] == {"sent": ROWS}
        assert figures["ledger"]["cardsByLoads"] == {"1": ROWS}
        assert figures["ledger"]["cardsByTransfers"] == {"1": ROWS}
        assert figures["exactlyOnce"] is True
        assert figures["sandbox"]["byStatus"].get("200", 0) >= ROWS, "one call per card"
    assert {"share429Percent", "rateLimited429"} <= rate_limited["sandbox"].keys()
    assert unthrottled["seedScript"]["rows"] == SEED_ROWS
    assert unthrottled["seedScript"]["ledger"]["eachCardLoadedAndTransferredOnce"] is True
    assert unthrottled["speedUp"] > 0


CALLS_SCRIPT = ROOT / "tests" / "benchmarks" / "calls_per_card.py"
CALLS_ROWS = 30
CALLS_HISTORY = 300
CALLS_IDS_TIMEOUT_SECONDS = 60
CALLS_RUN_TIMEOUT_SECONDS = 420.0
ENDPOINT = re.compile(r"^(GET|POST) /api/[a-z-]+(/\{id\}(/[a-z-]+)?)?$")
CALLS_RUN = {
    "case",
    "history",
    "listOrder",
    "rows",
    "rowsByState",
    "failedByErrorCode",
    "untilSettled",
    "untilTransferIds",
    "exactness",
    "wallSeconds",
}
CALLS_WINDOW = {"seconds", "calls", "callsPerCard", "byEndpoint", "byStatus", "byFault"}


@pytest.mark.timeout(BENCHMARK_TIMEOUT_SECONDS)
def test_the_calls_per_card_script_counts_calls_by_endpoint_for_an_empty_and_a_long_history() -> (
    None
):
    finished = subprocess.run(
        [
            sys.executable,
            str(CALLS_SCRIPT),
            "--rows",
            str(CALLS_ROWS),
            "--history",
            str(CALLS_HISTORY),
            "--workers",
            "1",
            "--ids-timeout",
            str(CALLS_IDS_TIMEOUT_SECONDS),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CALLS_RUN_TIMEOUT_SECONDS,
        check=False,
    )
    # Exit status 1 says exactness failed: the figures are still printed, and checked below.
    assert finished.returncode in (0, 1), finished.stderr[-3000:]
    [document] = _objects(finished.stdout)
    all_exact = all(run["exactness"]["exact"] for run in document["runs"])
    assert finished.returncode == (0 if all_exact else 1)
    assert document["benchmark"] == "calls_per_card"
    assert document["settings"]["rows"] == CALLS_ROWS
    empty, history = document["runs"]
    assert (empty["case"], empty["history"]) == ("empty", 0)
    assert (history["case"], history["history"]) == ("history", CALLS_HISTORY)
    for run in (empty, history):
        assert run.keys() >= CALLS_RUN
        assert run["listOrder"] == "newest"
        assert sum(run["rowsByState"].values()) == CALLS_ROWS
        assert sum(run["failedByErrorCode"].values()) == run["rowsByState"].get("failed", 0)
        settled = run["untilSettled"]
        assert settled.keys() >= CALLS_WINDOW
        assert run["untilTransferIds"].keys() >= CALLS_WINDOW | {"pendingAtSettle"}
        assert all(ENDPOINT.match(name) for name in settled["byEndpoint"]), settled
        assert sum(e["calls"] for e in settled["byEndpoint"].values()) == settled["calls"]
        assert settled["callsPerCard"] == round(settled["calls"] / CALLS_ROWS, 3)
        assert settled["byEndpoint"]["POST /api/external-assets"]["calls"] >= CALLS_ROWS
        exactness = run["exactness"]
        assert isinstance(exactness["exact"], bool)
        assert exactness["cardsLoadedMoreThanOnce"] == 0
        assert exactness["cardsTransferredMoreThanOnce"] == 0
        assert exactness["sentRowsWhoseTransferIsNotTheSandboxs"] == 0
        assert exactness["sentRows"] == run["rowsByState"].get("sent", 0)
