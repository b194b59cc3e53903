"""``distributor status BATCH``: where a batch stands, what failed and how to send it again."""

from __future__ import annotations

import re

import pytest

from distributor.config import Settings
from distributor.constants import BatchState, RowState
from tests.integration.cli.cli_helpers import Rows, flat, run, store_batch

pytestmark = pytest.mark.usefixtures("environment")

SEVERAL_STATES = [
    Rows(count=2, state=RowState.PENDING),
    Rows(count=1, state=RowState.TRANSFERRING),
    Rows(count=2, state=RowState.SENT, transfer_status="claimed"),
    Rows(count=1, state=RowState.SENT, transfer_status="created"),
    Rows(count=1, state=RowState.FAILED, error_code="UNKNOWN_ASSET"),
    Rows(count=2, state=RowState.FAILED, error_code="INSUFFICIENT_WALLET_BALANCE"),
    Rows(count=1, state=RowState.INVALID, error_code="INVALID_RECIPIENT"),
]


def test_status_shows_progress_rows_by_state_failed_rows_by_code_and_transfers(
    settings: Settings,
) -> None:
    batch_id = store_batch(settings, SEVERAL_STATES)
    code, out, err = run("status", str(batch_id))
    assert (code, err) == (0, "")
    shown = flat(out)
    assert f"batch {batch_id} december.csv: running" in shown
    assert re.search(r"progress: 6/9 settled \(66\.7%\), \d+\.\d+ rows/s, ETA \d+s", shown)
    assert (
        "│ pending │ 2 │ │ loading │ 0 │ │ loaded │ 0 │ │ transferring │ 1 │ │ sent │ 3 │" in shown
    )
    assert "│ INSUFFICIENT_WALLET_BALANCE │ 2 │ │ UNKNOWN_ASSET │ 1 │" in shown
    assert (
        "send them again with: "
        f"distributor retry {batch_id} --error-code INSUFFICIENT_WALLET_BALANCE "
        f"distributor retry {batch_id} --error-code UNKNOWN_ASSET"
    ) in shown
    assert "│ created │ 1 │ │ sent │ 0 │ │ claimed │ 2 │ │ expired │ 0 │ │ returned │ 0 │" in shown


def test_a_batch_not_started_shows_neither_progress_nor_failures_nor_transfers(
    settings: Settings,
) -> None:
    rows = [Rows(count=3, state=RowState.PENDING)]
    batch_id = store_batch(settings, rows, state=BatchState.QUEUED, started_ago=None)
    code, out, _ = run("status", str(batch_id))
    assert code == 0
    assert "│ pending │ 3 │" in flat(out)
    for absent in ("progress:", "failed rows", "retry", "transfer status"):
        assert absent not in out


def test_a_paused_batch_says_why_and_has_no_eta(settings: Settings) -> None:
    rows = [
        Rows(count=1, state=RowState.SENT, transfer_status="sent"),
        Rows(count=1, state="pending"),
    ]
    batch_id = store_batch(
        settings,
        rows,
        state=BatchState.PAUSED,
        pause_reason="Centrapay refused the API key (401)",
    )
    code, out, _ = run("status", str(batch_id))
    assert code == 0
    assert "paused: Centrapay refused the API key (401)" in out
    assert re.search(r"progress: 1/2 settled \(50\.0%\), \S+ rows/s, ETA -", out)


def test_rows_failed_without_a_code_are_sent_again_with_every_failed_row(
    settings: Settings,
) -> None:
    batch_id = store_batch(settings, [Rows(count=1, state=RowState.FAILED)])
    code, out, _ = run("status", str(batch_id))
    assert code == 0
    assert "│ UNKNOWN │ 1 │" in flat(out)
    assert f"distributor retry {batch_id} (every failed row)" in flat(out)


def test_a_cancelled_batch_shows_its_failed_rows_without_a_retry_hint(settings: Settings) -> None:
    rows = [Rows(count=1, state=RowState.FAILED, error_code="UNKNOWN_ASSET")]
    batch_id = store_batch(settings, rows, state=BatchState.CANCELLED)
    code, out, _ = run("status", str(batch_id))
    assert code == 0
    assert "│ UNKNOWN_ASSET │ 1 │" in flat(out)
    assert "retry" not in out


@pytest.mark.parametrize("args", [[], ["--watch"]], ids=["status", "watch"])
def test_an_unknown_batch_is_one_clear_line_and_exit_1(args: list[str]) -> None:
    code, out, err = run("status", "42", *args)
    assert (code, out) == (1, "")
    assert err == "error: batch 42 does not exist\n"
