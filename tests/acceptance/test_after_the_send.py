"""After the send, with real worker and beat processes, a real sandbox, Postgres and Redis: a
scheduled batch starts on time and not before, and a finished batch's notification reaches
a real HTTP receiver, signed, after a first answer of 500."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from distributor import notifications
from distributor.config import Settings
from distributor.constants import BatchState
from distributor.db import session_scope
from distributor.pipeline import scheduling
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings
from tests.acceptance.conftest import (
    assert_each_sent_once,
    batch_state,
    card_number,
    store_batch,
    wait_until_settled,
)
from tests.factories import make_batch, make_row
from tests.notify_receiver import Receiver, running_receiver
from tests.processes import ServiceProcess, run_distributor

StartService = Callable[..., ServiceProcess]
SECRET = "acceptance-notify-secret"
START_IN_SECONDS = 8.0
"""Long enough for worker and beat to be up and for several of beat's checks to pass."""
SETTINGS_PREFIXES = ("CENTRAPAY_", "DISTRIBUTOR_", "SANDBOX_", "BATCH_", "DATABASE_", "REDIS_")
DEMO_CSV = "recipientAlias,cardNumber,pin,message\n" + "".join(
    f"+6422123{index}234,2340880020{index},7331{index},Hello {index}\n" for index in range(3)
)
LATE_AT_MOST_SECONDS = scheduling.START_CHECK_SECONDS + 6.0
"""A check period, plus room for a busy 2-core machine (beat, Redis, a worker and Postgres
each take their turn; 5.6 s late was seen under a full xdist run)."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver(statuses=[500]) as running:
        yield running


def _scheduled_batch(settings: Settings, cards: list[str], start_in: float) -> int:
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state=BatchState.QUEUED)
        for line, card in enumerate(cards, start=1):
            make_row(
                session,
                batch=batch,
                vault=vault,
                card_number=card,
                recipient=f"+6422{line:07d}",
                line_no=line,
            )
        start_at = utcnow() + timedelta(seconds=start_in)
        scheduling.schedule(session, batch_id=batch.id, start_at=start_at)
        return batch.id


def test_a_scheduled_batch_does_not_start_early_and_starts_on_time(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    cards = [card_number(i, prefix="2341") for i in range(5)]
    batch_id = _scheduled_batch(pipeline_settings, cards, START_IN_SECONDS)
    start_service("worker")
    start_service("beat")
    start_at = batch_state(pipeline_settings, batch_id).start_at
    assert start_at is not None
    while utcnow() < start_at - timedelta(seconds=1):
        assert batch_state(pipeline_settings, batch_id).state == BatchState.SCHEDULED
        assert control.get("/ledger").json()["requestCount"] == 0
        time.sleep(0.2)
    deadline = time.monotonic() + LATE_AT_MOST_SECONDS + 1
    while batch_state(pipeline_settings, batch_id).state == BatchState.SCHEDULED:
        assert time.monotonic() < deadline, "the scheduled batch did not start on time"
        time.sleep(0.1)
    batch = batch_state(pipeline_settings, batch_id)
    assert batch.started_at is not None
    assert start_at <= batch.started_at <= start_at + timedelta(seconds=LATE_AT_MOST_SECONDS)
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 5}
    assert_each_sent_once(control, cards)


def test_a_finished_batch_notifies_the_receiver_signed_after_a_first_500(
    pipeline_settings: Settings,
    control: httpx.Client,
    start_service: StartService,
    receiver: Receiver,
) -> None:
    notify = {"BATCH_NOTIFY_URL": receiver.url, "BATCH_NOTIFY_SECRET": SECRET}
    start_service("worker", **notify)
    start_service("worker", **notify)  # two workers: still one notification
    start_service("beat", **notify)
    cards = [card_number(i, prefix="2342") for i in range(5)]
    batch_id = store_batch(pipeline_settings, cards)  # running; the sweeper queues its rows
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 5}
    first, second = receiver.wait_for(2, timeout=60.0)
    assert (first.status, second.status) == (500, 200)
    assert first.body == second.body
    assert notifications.verify(SECRET, second.body, second.headers[notifications.SIGNATURE_HEADER])
    body = json.loads(second.body)
    assert (body["event"], body["batch"]["id"]) == ("batch.done", batch_id)
    assert body["counts"]["sent"] == 5 and body["failedByErrorCode"] == {}
    time.sleep(notifications.RELAY_SECONDS * 2)  # the relay runs again: nothing more to send
    assert len(receiver.received) == 2
    assert batch_state(pipeline_settings, batch_id).state == BatchState.DONE
    assert_each_sent_once(control, cards)


def test_standalone_mode_sends_the_notification_in_process_after_a_first_500(
    tmp_path: Path, receiver: Receiver
) -> None:
    (tmp_path / "cards.csv").write_text(DEMO_CSV)
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    env |= {"BATCH_NOTIFY_URL": receiver.url, "BATCH_NOTIFY_SECRET": SECRET, "COLUMNS": "120"}
    done = run_distributor("run", "cards.csv", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = receiver.wait_for(2)
    assert (first.status, second.status) == (500, 200)
    assert notifications.verify(SECRET, second.body, second.headers[notifications.SIGNATURE_HEADER])
    assert json.loads(second.body)["counts"]["sent"] == 3
