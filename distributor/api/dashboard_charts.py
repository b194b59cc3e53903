"""A batch's run over time, for the dashboard's chart: rows settled and Centrapay's answers.

Rows settled come from the rows, in one grouped query: a row is placed at the moment of its
last change, ``sent_at`` for a sent row, ``updated_at`` for any other.

Centrapay's answers come from the batch's record (``answer_log``), read in one HGETALL:
every call made for the batch, by class, per second. Answers outside the run (a transfer
poll or a reclaim after it finished) are counted in ``answers_outside`` and drawn in no
interval. The record is informational (counts Redis could not take are missing), and a
batch may have none: sent in standalone mode or before the record was kept, last written
more than ``answer_log.RETENTION_SECONDS`` ago, or Redis cannot be read. Then the answers
drawn are the last answer each row holds: a sent row's last call was a 2xx, a row's
``error_code`` names its last failure (``RATE_LIMITED`` a 429, ``SERVER_ERROR`` a 5xx,
``TIMEOUT`` and ``CONNECTION_ERROR`` no answer), and a row that got a 429 and then a 2xx
counts once, as a 2xx. ``Timeline.source`` says which of the two is drawn.

The run, from ``started_at`` to ``finished_at`` (or now), is cut into about
``TARGET_BUCKETS`` intervals of whole seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, case, extract, func, literal, select
from sqlalchemy.orm import Session

from distributor import answer_log
from distributor.constants import RowState
from distributor.models import Batch, Row
from distributor.progress import NOT_SENDABLE_STATES, SETTLED_STATES

TARGET_BUCKETS = 60
ANSWER_CLASSES = answer_log.ANSWER_CLASSES
"""The classes of Centrapay's answers, in the order the chart stacks them."""
TIMEOUT_CODES = ("TIMEOUT", "CONNECTION_ERROR")

CHART_WIDTH = 720
CHART_HEIGHT = 150
"""The plot area of each chart in SVG units; the axis labels sit outside it."""


class AnswerSource(StrEnum):
    """Where the answers drawn come from."""

    RECORD = "record"
    """The batch's answer log: every call."""
    LAST_ANSWERS = "last_answers"
    """The rows: each row's last answer, once."""


@dataclass(frozen=True, kw_only=True)
class Bar:
    """One rectangle of a chart, in SVG units, and what it stands for."""

    x: float
    y: float
    width: float
    height: float
    css_class: str
    title: str


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """A batch's run cut into equal intervals, and the two charts drawn from it."""

    started_at: datetime
    ended_at: datetime
    bucket_seconds: int
    settled: list[int]
    """Rows settled (sent, failed or cancelled) in each interval."""
    source: AnswerSource
    answers: list[dict[str, int]]
    """Answers in each interval, by class: every call's (from the record), or the last one
    of each row whose last change came then."""
    answer_totals: dict[str, int]
    answers_outside: int
    """Recorded answers that came outside the run (mostly after it finished), drawn nowhere."""
    peak_rate: float
    """The highest rows-per-second of any interval: the top of the rate chart."""
    peak_answers: int
    rate_bars: list[Bar]
    answer_bars: list[Bar]


def _moment() -> ColumnElement[datetime]:
    return case((Row.state == RowState.SENT, Row.sent_at), else_=Row.updated_at)


def _answer_class() -> ColumnElement[str | None]:
    code = Row.error_code
    return case(
        (Row.state == RowState.SENT, literal(answer_log.ANSWER_2XX)),
        (code == "RATE_LIMITED", literal(answer_log.ANSWER_429)),
        (code == "SERVER_ERROR", literal(answer_log.ANSWER_5XX)),
        (code.in_(TIMEOUT_CODES), literal(answer_log.ANSWER_TIMEOUT)),
        (code.is_not(None), literal(answer_log.ANSWER_OTHER)),
        else_=None,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _no_answers(count: int) -> list[dict[str, int]]:
    return [dict.fromkeys(ANSWER_CLASSES, 0) for _ in range(count)]


def batch_timeline(
    session: Session, batch: Batch, *, now: datetime, redis_url: str | None = None
) -> Timeline | None:
    """The batch's run in intervals; None before it started.

    The answers come from the batch's record in the Redis at ``redis_url``, or from its
    rows when there is none (or ``redis_url`` is None).
    """
    if batch.started_at is None:
        return None
    start = _aware(batch.started_at)
    end = max(_aware(batch.finished_at or now), start)
    span = max((end - start).total_seconds(), 1.0)
    width = max(1, math.ceil(span / TARGET_BUCKETS))
    count = max(1, math.ceil(span / width))
    settled, last_answers = _from_rows(session, batch, start=start, width=width, count=count)
    record = None if redis_url is None else answer_log.recorded_answers(redis_url, batch.id)
    if record is None:
        source, answers, outside = AnswerSource.LAST_ANSWERS, last_answers, 0
    else:
        source = AnswerSource.RECORD
        answers, outside = _from_record(record, start=start, end=end, width=width, count=count)
    totals = {name: sum(bucket[name] for bucket in answers) for name in ANSWER_CLASSES}
    peak_rate = max(settled) / width
    peak_answers = max(sum(bucket.values()) for bucket in answers)
    return Timeline(
        started_at=start,
        ended_at=end,
        bucket_seconds=width,
        settled=settled,
        source=source,
        answers=answers,
        answer_totals=totals,
        answers_outside=outside,
        peak_rate=peak_rate,
        peak_answers=peak_answers,
        rate_bars=_rate_bars(settled, width=width, peak=max(settled)),
        answer_bars=_answer_bars(answers, width=width, peak=peak_answers, source=source),
    )


def _from_rows(
    session: Session, batch: Batch, *, start: datetime, width: int, count: int
) -> tuple[list[int], list[dict[str, int]]]:
    """Rows settled, and rows by their last answer, in each interval: one grouped query."""
    moment = _moment()
    interval = func.floor((extract("epoch", moment) - start.timestamp()) / width)
    answer = _answer_class()
    settled_flag = Row.state.in_(SETTLED_STATES)
    query = (
        select(interval, settled_flag, answer, func.count())
        .where(
            Row.batch_id == batch.id,
            Row.state.not_in(NOT_SENDABLE_STATES),
            moment.is_not(None),
            moment >= start,
        )
        .group_by(interval, settled_flag, answer)
    )
    settled = [0] * count
    answers = _no_answers(count)
    for index, is_settled, answer_class, rows in session.execute(query):
        # A row changed after the end (a late sweep of a finished batch) joins the last one.
        at = min(int(index), count - 1)
        if is_settled:
            settled[at] += rows
        if answer_class is not None:
            answers[at][answer_class] += rows
    return settled, answers


def _from_record(
    record: dict[tuple[int, str], int], *, start: datetime, end: datetime, width: int, count: int
) -> tuple[list[dict[str, int]], int]:
    """The recorded answers in each interval, and how many came outside the run."""
    answers = _no_answers(count)
    outside = 0
    origin = start.timestamp()
    for (second, name), calls in record.items():
        if not math.floor(origin) <= second <= math.floor(end.timestamp()):
            outside += calls
            continue
        # A whole second is placed at its middle; the seconds holding the start and the
        # end join the first and the last interval.
        index = math.floor((second + 0.5 - origin) / width)
        answers[min(max(index, 0), count - 1)][name] += calls
    return answers, outside


def _label(index: int, width: int) -> str:
    return f"{index * width}-{(index + 1) * width} s after the start"


def _rate_bars(settled: list[int], *, width: int, peak: int) -> list[Bar]:
    step = CHART_WIDTH / len(settled)
    bars = []
    for index, rows in enumerate(settled):
        if not rows:
            continue
        height = CHART_HEIGHT * rows / peak
        bars.append(
            Bar(
                x=index * step,
                y=CHART_HEIGHT - height,
                width=step,
                height=height,
                css_class="rate",
                title=f"{_label(index, width)}: {rows / width:.2f} rows/s",
            )
        )
    return bars


def _answer_bars(
    answers: list[dict[str, int]], *, width: int, peak: int, source: AnswerSource
) -> list[Bar]:
    step = CHART_WIDTH / len(answers)
    what = "answers" if source is AnswerSource.RECORD else "rows, last answer"
    bars = []
    for index, bucket in enumerate(answers):
        top = float(CHART_HEIGHT)
        for name in ANSWER_CLASSES:
            if not bucket[name]:
                continue
            height = CHART_HEIGHT * bucket[name] / peak
            top -= height
            bars.append(
                Bar(
                    x=index * step,
                    y=top,
                    width=step,
                    height=height,
                    css_class=f"answer-{name}",
                    title=f"{_label(index, width)}: {bucket[name]} {what} {name}",
                )
            )
    return bars
