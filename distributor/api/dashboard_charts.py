"""A batch's run over time, for the dashboard's chart: rows settled and Centrapay's answers.

Nothing records each Centrapay call per batch (the ``distributor_centrapay_calls_total``
counter is per process, by endpoint and status, with no batch), so the answers drawn are
the last answer each row holds: a sent row's last call was a 2xx, a row's ``error_code``
names its last failure (``RATE_LIMITED`` a 429, ``SERVER_ERROR`` a 5xx, ``TIMEOUT`` and
``CONNECTION_ERROR`` no answer). A row that got a 429 and then a 2xx counts once, as a 2xx.

A row is placed at the moment of its last change: ``sent_at`` for a sent row, ``updated_at``
for any other. The run, from ``started_at`` to ``finished_at`` (or now), is cut into about
``TARGET_BUCKETS`` intervals of whole seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, case, extract, func, literal, select
from sqlalchemy.orm import Session

from distributor.constants import RowState
from distributor.models import Batch, Row
from distributor.progress import NOT_SENDABLE_STATES, SETTLED_STATES

TARGET_BUCKETS = 60
ANSWER_CLASSES = ("2xx", "429", "5xx", "timeout", "other")
"""The classes of the last answer a row holds, in the order the chart stacks them."""
TIMEOUT_CODES = ("TIMEOUT", "CONNECTION_ERROR")

CHART_WIDTH = 720
CHART_HEIGHT = 150
"""The plot area of each chart in SVG units; the axis labels sit outside it."""


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
    answers: list[dict[str, int]]
    """Rows whose last answer came in each interval, by answer class."""
    answer_totals: dict[str, int]
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
        (Row.state == RowState.SENT, literal("2xx")),
        (code == "RATE_LIMITED", literal("429")),
        (code == "SERVER_ERROR", literal("5xx")),
        (code.in_(TIMEOUT_CODES), literal("timeout")),
        (code.is_not(None), literal("other")),
        else_=None,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def batch_timeline(session: Session, batch: Batch, *, now: datetime) -> Timeline | None:
    """The batch's run in intervals, in one grouped query; None before it started."""
    if batch.started_at is None:
        return None
    start = _aware(batch.started_at)
    end = max(_aware(batch.finished_at or now), start)
    span = max((end - start).total_seconds(), 1.0)
    width = max(1, math.ceil(span / TARGET_BUCKETS))
    count = max(1, math.ceil(span / width))
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
    answers: list[dict[str, int]] = [dict.fromkeys(ANSWER_CLASSES, 0) for _ in range(count)]
    for index, is_settled, answer_class, rows in session.execute(query):
        # A row changed after the end (a late sweep of a finished batch) joins the last one.
        at = min(int(index), count - 1)
        if is_settled:
            settled[at] += rows
        if answer_class is not None:
            answers[at][answer_class] += rows
    totals = {name: sum(bucket[name] for bucket in answers) for name in ANSWER_CLASSES}
    peak_rate = max(settled) / width
    peak_answers = max(sum(bucket.values()) for bucket in answers)
    return Timeline(
        started_at=start,
        ended_at=end,
        bucket_seconds=width,
        settled=settled,
        answers=answers,
        answer_totals=totals,
        peak_rate=peak_rate,
        peak_answers=peak_answers,
        rate_bars=_rate_bars(settled, width=width, peak=max(settled)),
        answer_bars=_answer_bars(answers, width=width, peak=peak_answers),
    )


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


def _answer_bars(answers: list[dict[str, int]], *, width: int, peak: int) -> list[Bar]:
    step = CHART_WIDTH / len(answers)
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
                    title=f"{_label(index, width)}: {bucket[name]} rows, last answer {name}",
                )
            )
    return bars
