"""``distributor status BATCH --watch``: progress until the batch is finished, or Ctrl-C."""

from __future__ import annotations

import re
import threading

from distributor.config import Settings
from distributor.constants import BatchState, RowState
from tests.integration.cli.cli_helpers import (
    Rows,
    finish_batch,
    flat,
    run,
    store_batch,
)
from tests.integration.cli.conftest import StartWatcher

HALF_DONE = [
    Rows(count=2, state=RowState.SENT, transfer_status="claimed"),
    Rows(count=1, state=RowState.TRANSFERRING),
    Rows(count=1, state=RowState.PENDING),
]
FINISH_AFTER_SECONDS = 0.6
ANSI_CODE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PAUSE_REASON = "Centrapay refused the API key (401)"


def test_watch_exits_0_with_the_final_counts_once_another_thread_finishes_the_batch(
    settings: Settings, environment: None
) -> None:
    batch_id = store_batch(settings, HALF_DONE)
    workers = threading.Timer(FINISH_AFTER_SECONDS, finish_batch, (settings, batch_id))
    workers.start()
    try:
        code, out, err = run("status", str(batch_id), "--watch", "--interval", "0.1")
    finally:
        workers.join()
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"batch {batch_id} running: 2/4 settled (50.0%), ")
    assert lines[0].endswith("; pending 1, transferring 1, sent 2")
    assert f"batch {batch_id} done: 4/4 settled (100.0%)" in out
    shown = flat(out)
    assert f"batch {batch_id} december.csv: done" in shown
    assert "│ pending │ 0 │" in shown
    assert "│ sent │ 4 │" in shown
    assert "│ created │ 2 │ │ sent │ 0 │ │ claimed │ 2 │" in shown


def test_watch_in_a_pipe_prints_a_line_per_refresh_and_the_summary_when_the_batch_is_done(
    settings: Settings, start_watcher: StartWatcher
) -> None:
    batch_id = store_batch(settings, HALF_DONE)
    watcher = start_watcher(batch_id)
    watcher.wait_for(f"batch {batch_id} running: 2/4 settled", times=2)
    finish_batch(settings, batch_id)
    code, out, err = watcher.finish()
    assert (code, err) == (0, "")
    assert "\x1b[" not in out  # plain text: no cursor movement, no colour
    assert f"batch {batch_id} done: 4/4 settled (100.0%)" in out
    assert "│ sent │ 4 │" in flat(out)


def test_watch_shows_why_a_batch_is_paused_and_keeps_watching_until_it_is_done(
    settings: Settings, start_watcher: StartWatcher
) -> None:
    batch_id = store_batch(settings, HALF_DONE, state=BatchState.PAUSED, pause_reason=PAUSE_REASON)
    watcher = start_watcher(batch_id)
    out = watcher.wait_for(f"paused: {PAUSE_REASON}", times=3)
    assert f"batch {batch_id} paused: 2/4 settled (50.0%)" in out
    assert ", ETA -;" in out
    assert watcher.process.poll() is None
    finish_batch(settings, batch_id)
    code, out, _ = watcher.finish()
    assert code == 0
    assert f"batch {batch_id} done: 4/4 settled (100.0%)" in out


def test_watch_on_a_terminal_draws_a_live_bar_then_the_summary(
    settings: Settings, start_watcher: StartWatcher
) -> None:
    batch_id = store_batch(settings, HALF_DONE)
    watcher = start_watcher(batch_id, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", TERM="xterm")
    watcher.wait_for("2/4 settled (50.0%)", times=2)
    finish_batch(settings, batch_id)
    code, out, err = watcher.finish()
    assert (code, err) == (0, "")
    assert "━" in out  # the bar
    assert "\x1b[2K" in out  # lines redrawn in place
    assert "pending 1, transferring 1, sent 2" in out
    assert f"batch {batch_id} december.csv: done" in ANSI_CODE.sub("", out)


def test_ctrl_c_stops_watching_with_exit_130_and_no_traceback(
    settings: Settings, start_watcher: StartWatcher
) -> None:
    batch_id = store_batch(settings, HALF_DONE)
    watcher = start_watcher(batch_id)
    watcher.wait_for(f"batch {batch_id} running:")
    watcher.interrupt()
    code, out, err = watcher.finish()
    assert code == 130
    assert err == ""
    assert out.endswith(f"stopped watching batch {batch_id}; the batch itself goes on\n")
