"""The pipeline benchmark script works end to end on a tiny batch (not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "benchmarks" / "pipeline_throughput.py"
ROWS = 40
SEED_ROWS = 10
RUN_TIMEOUT_SECONDS = 240.0

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
        assert figures["sandbox"]["byStatus"].get("200", 0) >= 2 * ROWS
    assert {"share429Percent", "rateLimited429"} <= rate_limited["sandbox"].keys()
    assert unthrottled["seedScript"]["rows"] == SEED_ROWS
    assert unthrottled["seedScript"]["ledger"]["eachCardLoadedAndTransferredOnce"] is True
    assert unthrottled["speedUp"] > 0
