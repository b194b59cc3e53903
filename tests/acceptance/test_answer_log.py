"""The answer log of a batch sent by a real worker holds every answer the sandbox gave."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from distributor.config import Settings
from tests.acceptance.conftest import card_number, enqueue, store_batch, wait_until_settled
from tests.integration.answer_log.answer_helpers import recorded_totals
from tests.processes import ServiceProcess

StartService = Callable[..., ServiceProcess]

CLIENT_TIMEOUT_SECONDS = 3.0
HOLD_SECONDS = 8.0
"""The sandbox withholds a ``timeout`` answer well past the client's timeout, so the client
has given up on every one of them (none ends as a late 504) and nothing else times out."""
SCRIPTED = [
    ("POST", "/api/external-assets", "5xx", 2),
    ("POST", "/api/external-assets", "429", 2),
    ("POST", "/api/external-assets", "timeout", 2),
    ("POST", "/api/external-assets", "drop", 1),
    ("GET", "/api/accounts/", "5xx", 1),
]


@pytest.fixture
def pipeline_settings(pipeline_settings: Settings) -> Settings:
    """The acceptance settings, with a client timeout no ordinary answer comes near."""
    return pipeline_settings.model_copy(
        update={"centrapay_timeout_seconds": CLIENT_TIMEOUT_SECONDS}
    )


def _sandbox_answers(requests: list[dict[str, Any]]) -> dict[str, int]:
    """What the sandbox answered, by the log's classes; the shared transfer-id sync's
    listings (``GET /api/asset-transfers``) serve no one batch and are left out."""
    answers: Counter[str] = Counter()
    for request in requests:
        if (request["method"], request["path"]) == ("GET", "/api/asset-transfers"):
            continue
        status = request["status"]
        if status is None:
            assert request["fault"] in ("timeout", "drop"), request
            answers["timeout"] += 1
        elif 200 <= status < 300:
            answers["2xx"] += 1
        elif status == 429:
            answers["429"] += 1
        elif status >= 500:
            answers["5xx"] += 1
        else:
            answers["other"] += 1
    return dict(answers)


@pytest.mark.timeout(180)
def test_a_batch_through_faults_ends_with_its_record_equal_to_the_sandboxs_answers(
    pipeline_settings: Settings,
    control: httpx.Client,
    start_service: StartService,
    redis_url: str,
) -> None:
    control.patch("/config", json={"fault5xx": 0.05, "timeoutHoldSeconds": HOLD_SECONDS})
    for method, path, fault, count in SCRIPTED:
        planned = control.post(
            "/faults", json={"method": method, "path": path, "fault": fault, "count": count}
        )
        assert planned.status_code == 200, planned.text
    cards = [*(card_number(i) for i in range(30)), card_number(1, prefix="9901")]
    batch_id = store_batch(pipeline_settings, cards)
    worker = start_service("worker")
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id, timeout=150) == {
        "sent": 30,
        "failed": 1,
    }
    expected = _sandbox_answers(control.get("/ledger/requests").json()["items"])
    assert expected["5xx"] >= 3 and expected["429"] >= 2 and expected["timeout"] >= 3
    assert expected["other"] >= 1, "the 9901 card's UNKNOWN_ASSET refusal"

    # A clean stop writes what the worker still holds: no waiting for a flush after it.
    worker.kill(signal.SIGTERM)
    reader = redis.Redis.from_url(redis_url)
    try:
        assert recorded_totals(reader, batch_id) == expected
    finally:
        reader.close()
