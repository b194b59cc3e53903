"""What the row queue puts on Redis: a backlog's rows several to a message, at high rates.

Read back from the real broker lists, as a worker would receive them.
"""

from __future__ import annotations

import base64
import json

import pytest
import redis

from distributor.broker import (
    ROW_TASK,
    ROWS_PER_MESSAGE_MAX,
    CeleryRowQueue,
    make_celery,
    rows_per_message,
)
from distributor.config import Settings
from distributor.constants import CELERY_QUEUE, CONTROL_QUEUE


def _messages(redis_url: str, queue: str) -> list[tuple[int, list[int]]]:
    """(batch id, row ids) of each row-task message waiting in ``queue``, oldest first."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.lrange(queue, 0, -1)
    finally:
        client.close()
    found = []
    for item in reversed(raw):
        message = json.loads(item)
        assert message["headers"]["task"] == ROW_TASK
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append((kwargs["batch_id"], kwargs["row_ids"]))
    return found


@pytest.mark.parametrize(
    ("rate_per_second", "rows"),
    [
        (3.3, 1),
        (25.0, 1),
        (99.0, 3),
        (200.0, ROWS_PER_MESSAGE_MAX),
        (100_000.0, ROWS_PER_MESSAGE_MAX),
    ],
)
def test_rows_share_a_message_only_at_rates_where_messages_would_be_many(
    rate_per_second: float, rows: int
) -> None:
    assert rows_per_message(rate_per_second) == rows


def test_a_backlog_goes_several_rows_to_a_message_and_a_row_coming_back_alone(
    settings: Settings,
) -> None:
    fast = settings.model_copy(update={"centrapay_rate_per_second": 1_000.0})
    celery = make_celery(fast)
    queue = CeleryRowQueue(celery)
    backlog = [(row_id, 7) for row_id in range(1, 21)] + [(21, 8), (22, 7)]
    try:
        queue.submit(backlog)
        queue.submit([(30, 7)], countdown=0.5, urgent=True)
        queue.submit([(31, 7), (32, 8)], urgent=True)
    finally:
        celery.close()
    assert _messages(fast.redis_url, CELERY_QUEUE) == [
        (7, list(range(1, 9))),
        (7, list(range(9, 17))),
        (7, [17, 18, 19, 20, 22]),
        (8, [21]),
    ]
    assert _messages(fast.redis_url, CONTROL_QUEUE) == [(7, [30]), (7, [31]), (8, [32])]
