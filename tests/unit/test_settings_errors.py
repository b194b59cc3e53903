"""A missing or malformed setting stops a command with one line naming it, not a traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.processes import run_distributor


def _distributor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CENTRAPAY_", "DISTRIBUTOR_", "SANDBOX_"))
    }
    return run_distributor(*args, env=clean | {"COLUMNS": "200"} | env, timeout=60)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CENTRAPAY_RATE_PER_SECOND", "fast"),
        ("WORKER_CONCURRENCY", "0"),
        ("DEFAULT_ASSET_TYPE", "epay.usd.main"),
        ("DISTRIBUTOR_SECRET_KEY", "too-short"),
    ],
)
def test_a_malformed_setting_is_named_on_one_line(variable: str, value: str) -> None:
    finished = _distributor("status", "1", **{variable: value})
    assert finished.returncode == 2
    assert finished.stderr.startswith(f"error: setting {variable} is invalid")
    assert finished.stderr.count("\n") == 1
    assert "Traceback" not in finished.stderr


def test_a_worker_without_a_centrapay_url_names_the_missing_setting() -> None:
    finished = _distributor("worker", DISTRIBUTOR_SECRET_KEY="k" * 40)
    assert finished.returncode == 2
    assert (
        finished.stderr.strip() == "error: CENTRAPAY_BASE_URL is not set; see README.md, Settings"
    )
