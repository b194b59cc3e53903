"""Reading a batch's answer log straight from Redis, as the tests check it."""

from __future__ import annotations

from collections import Counter
from typing import cast

import redis

from distributor.answer_log import answers_key


def recorded_totals(client: redis.Redis, batch_id: int) -> dict[str, int]:
    """The batch's recorded answers by class, over all its seconds (classes with none left out)."""
    fields = cast(dict[bytes, bytes], client.hgetall(answers_key(batch_id)))
    totals: Counter[str] = Counter()
    for field, calls in fields.items():
        totals[field.decode().partition(":")[2]] += int(calls)
    return dict(totals)
