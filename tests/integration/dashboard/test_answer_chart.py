"""The batch page's chart of Centrapay's answers: every call from the batch's record, or,
without one, each row's last answer; the page says which."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from sqlalchemy import update

from distributor.answer_log import AnswerLog, answers_key, on_behalf_of
from distributor.api.dashboard_charts import AnswerSource, Timeline, batch_timeline
from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.models import Batch, Row
from distributor.pipeline.clock import utcnow
from tests.integration.dashboard.dashboard_helpers import Spec, specs, store_batch
from tests.processes import free_port

STARTED = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
NONE = {"2xx": 0, "429": 0, "5xx": 0, "timeout": 0, "other": 0}


@pytest.fixture
def reader(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test's Redis database."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _finished_batch(settings: Settings) -> int:
    """A batch run from STARTED for 120 s: 4 rows sent 10 s in, one failed at 50 s on a 5xx."""
    batch_id = store_batch(
        settings,
        [*specs(sent=4), Spec(state=RowState.FAILED, error_code="SERVER_ERROR")],
        state=BatchState.DONE,
        started_at=STARTED,
        finished_at=STARTED + timedelta(seconds=120),
    )
    with session_scope(settings.database_url) as session:
        for line, after in {1: 10, 2: 10, 3: 10, 4: 10, 5: 50}.items():
            at = STARTED + timedelta(seconds=after)
            session.execute(
                update(Row)
                .where(Row.batch_id == batch_id, Row.line_no == line)
                .values(sent_at=at if line <= 4 else None, updated_at=at)
            )
    return batch_id


def _timeline(settings: Settings, batch_id: int, *, redis_url: str | None) -> Timeline | None:
    with session_scope(settings.database_url) as session:
        batch = session.get_one(Batch, batch_id)
        return batch_timeline(session, batch, now=utcnow(), redis_url=redis_url)


def _totals(page: httpx.Response) -> dict[str, str]:
    return dict(re.findall(r'data-answer="([^"]+)">[^<]*<b>(\d+)</b>', page.text))


def test_the_chart_draws_every_recorded_answer_in_its_interval(
    settings: Settings, reader: redis.Redis, browser: httpx.Client
) -> None:
    batch_id = _finished_batch(settings)
    second = int(STARTED.timestamp())
    record = {
        f"{second}:2xx": 3,
        f"{second + 21}:429": 2,
        f"{second + 21}:2xx": 2,
        f"{second + 50}:5xx": 1,
        f"{second + 50}:timeout": 4,
        f"{second + 119}:other": 1,
        f"{second + 120}:2xx": 1,
        f"{second + 121}:2xx": 5,
        f"{second - 1}:2xx": 7,
    }
    for field, calls in record.items():
        reader.hincrby(answers_key(batch_id), field, calls)

    timeline = _timeline(settings, batch_id, redis_url=settings.redis_url)
    assert timeline is not None
    assert (timeline.source, timeline.bucket_seconds, len(timeline.answers)) == (
        AnswerSource.RECORD,
        2,
        60,
    )
    drawn = {index: bucket for index, bucket in enumerate(timeline.answers) if any(bucket.values())}
    assert drawn == {
        0: NONE | {"2xx": 3},
        10: NONE | {"2xx": 2, "429": 2},
        25: NONE | {"5xx": 1, "timeout": 4},
        59: NONE | {"2xx": 1, "other": 1},
    }
    assert timeline.answer_totals == {"2xx": 6, "429": 2, "5xx": 1, "timeout": 4, "other": 1}
    assert timeline.answers_outside == 12, "before the start and after the end: drawn nowhere"
    assert {index: rows for index, rows in enumerate(timeline.settled) if rows} == {5: 4, 25: 1}
    assert timeline.peak_answers == 5

    page = browser.get(f"/dashboard/batches/{batch_id}")
    assert 'data-source="record"' in page.text
    assert "<figcaption>Centrapay&#39;s answers</figcaption>" in page.text
    assert "12 answers outside the run" in page.text
    assert "20-22 s after the start: 2 answers 429" in page.text
    assert _totals(page) == {"2xx": "6", "429": "2", "5xx": "1", "timeout": "4", "other": "1"}


def test_the_answers_the_log_writes_are_the_ones_the_page_shows(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, specs(pending=3), started_at=utcnow() - timedelta(seconds=30))
    log = AnswerLog.to_redis(settings.redis_url)
    with on_behalf_of(batch_id):
        for status in (200, 200, 201, 429, 502, None, None, 403):
            log.count(status)
    log.close()
    page = browser.get(f"/dashboard/batches/{batch_id}")
    assert 'data-source="record"' in page.text
    assert _totals(page) == {"2xx": "3", "429": "1", "5xx": "1", "timeout": "2", "other": "1"}


def test_a_batch_without_a_record_is_drawn_from_its_rows_last_answers_and_says_so(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = _finished_batch(settings)
    timeline = _timeline(settings, batch_id, redis_url=settings.redis_url)
    assert timeline is not None
    assert timeline.source == AnswerSource.LAST_ANSWERS
    assert timeline.answer_totals == NONE | {"2xx": 4, "5xx": 1}
    assert timeline.answers_outside == 0

    page = browser.get(f"/dashboard/batches/{batch_id}")
    assert 'data-source="last_answers"' in page.text
    assert "No record of each call for this batch" in page.text
    assert "<figcaption>Rows by Centrapay&#39;s last answer</figcaption>" in page.text
    assert "10-12 s after the start: 4 rows, last answer 2xx" in page.text
    assert _totals(page) == {"2xx": "4", "429": "0", "5xx": "1", "timeout": "0", "other": "0"}


def test_a_redis_that_cannot_be_read_gives_the_rows_picture_not_an_error(
    settings: Settings, reader: redis.Redis
) -> None:
    batch_id = _finished_batch(settings)
    reader.hincrby(answers_key(batch_id), f"{int(STARTED.timestamp())}:429", 9)
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    timeline = _timeline(settings, batch_id, redis_url=unreachable)
    assert timeline is not None
    assert timeline.source == AnswerSource.LAST_ANSWERS
    assert timeline.answer_totals == NONE | {"2xx": 4, "5xx": 1}
