"""Batch progress from rows in known states: totals, rate, ETA, failures by error code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from distributor.config import Settings
from distributor.constants import BatchState
from distributor.db import session_scope
from distributor.models import Batch
from distributor.progress import Progress, batch_progress, batches_progress
from tests.integration.dashboard.dashboard_helpers import Spec, specs, store_batch

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def _progress(settings: Settings, batch_id: int, *, now: datetime = NOW) -> Progress:
    with session_scope(settings.database_url) as session:
        return batch_progress(session, session.get_one(Batch, batch_id), now=now)


def _mixed() -> list[Spec]:
    return [
        *specs(sent=10, cancelled=1, pending=4, loaded=1, invalid=1, duplicate=1),
        Spec(state="failed", error_code="UNKNOWN_ASSET"),
        Spec(state="failed", error_code="INSUFFICIENT_WALLET_BALANCE"),
        Spec(state="failed", error_code="UNKNOWN_ASSET"),
    ]


def test_invalid_and_duplicate_rows_do_not_count_towards_the_total(settings: Settings) -> None:
    batch_id = store_batch(settings, _mixed(), started_at=NOW - timedelta(seconds=20))
    progress = _progress(settings, batch_id)
    assert progress.total == 19
    assert (progress.sent, progress.failed) == (10, 3)
    assert progress.settled == 14
    assert progress.unsettled == 5
    assert progress.percent_done == pytest.approx(100 * 14 / 19)


def test_the_rate_is_rows_sent_over_the_time_since_the_start(settings: Settings) -> None:
    batch_id = store_batch(settings, _mixed(), started_at=NOW - timedelta(seconds=20))
    progress = _progress(settings, batch_id)
    assert progress.rows_per_second == pytest.approx(0.5)
    assert progress.eta_seconds == pytest.approx(10.0)


def test_failed_rows_are_grouped_by_error_code_most_frequent_first(settings: Settings) -> None:
    batch_id = store_batch(settings, _mixed(), started_at=NOW)
    groups = _progress(settings, batch_id).failed_by_error_code
    assert list(groups.items()) == [("UNKNOWN_ASSET", 2), ("INSUFFICIENT_WALLET_BALANCE", 1)]


def test_a_finished_batch_is_timed_to_its_finish_and_has_nothing_left(settings: Settings) -> None:
    batch_id = store_batch(
        settings,
        specs(sent=30),
        state=BatchState.DONE,
        started_at=NOW - timedelta(hours=2),
        finished_at=NOW - timedelta(hours=2) + timedelta(seconds=60),
    )
    progress = _progress(settings, batch_id)
    assert progress.rows_per_second == pytest.approx(0.5)
    assert progress.eta_seconds == 0.0
    assert progress.percent_done == 100.0


@pytest.mark.parametrize("state", [BatchState.PAUSED, BatchState.CANCELLED])
def test_a_batch_that_is_not_running_has_a_rate_but_no_eta(settings: Settings, state: str) -> None:
    batch_id = store_batch(
        settings, specs(sent=4, pending=4), state=state, started_at=NOW - timedelta(seconds=8)
    )
    progress = _progress(settings, batch_id)
    assert progress.rows_per_second == pytest.approx(0.5)
    assert progress.eta_seconds is None


def test_a_batch_not_started_has_neither_rate_nor_eta(settings: Settings) -> None:
    batch_id = store_batch(settings, specs(pending=3), state=BatchState.QUEUED)
    progress = _progress(settings, batch_id)
    assert (progress.rows_per_second, progress.eta_seconds) == (None, None)
    assert progress.percent_done == 0.0


def test_before_the_first_row_is_sent_the_rate_is_zero_and_the_eta_unknown(
    settings: Settings,
) -> None:
    batch_id = store_batch(settings, specs(pending=3), started_at=NOW - timedelta(seconds=5))
    progress = _progress(settings, batch_id)
    assert progress.rows_per_second == 0.0
    assert progress.eta_seconds is None


def test_a_batch_with_nothing_to_send_is_complete(settings: Settings) -> None:
    batch_id = store_batch(settings, specs(invalid=2, duplicate=1), state=BatchState.DONE)
    progress = _progress(settings, batch_id)
    assert (progress.total, progress.percent_done, progress.eta_seconds) == (0, 100.0, 0.0)


def test_the_progress_of_many_batches_comes_from_the_same_rows(settings: Settings) -> None:
    first = store_batch(settings, specs(sent=2, pending=2), started_at=NOW, batch_index=1)
    second = store_batch(settings, specs(failed=3), started_at=NOW, batch_index=2)
    empty = store_batch(settings, [], state=BatchState.QUEUED, batch_index=3)
    with session_scope(settings.database_url) as session:
        found = [session.get_one(Batch, batch_id) for batch_id in (first, second, empty)]
        many = batches_progress(session, found, now=NOW)
        singles = {batch.id: batch_progress(session, batch, now=NOW) for batch in found}
    assert many == singles
    assert many[second].failed_by_error_code == {"UNKNOWN_ASSET": 3}
    assert many[empty].total == 0


def test_a_batch_answer_from_the_api_carries_its_progress(
    settings: Settings, scraper: httpx.Client
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=30)
    batch_id = store_batch(settings, _mixed(), started_at=started)
    shown = scraper.get(f"/batches/{batch_id}").json()
    progress = shown["progress"]
    assert (progress["total"], progress["settled"], progress["unsettled"]) == (19, 14, 5)
    assert progress["percent_done"] == 73.7
    assert progress["rows_per_second"] == pytest.approx(10 / 30, abs=0.05)
    assert progress["failed_by_error_code"] == {
        "UNKNOWN_ASSET": 2,
        "INSUFFICIENT_WALLET_BALANCE": 1,
    }
