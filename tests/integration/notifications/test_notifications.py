"""Completion notifications against real Postgres and a real HTTP receiver on a loopback port:
recorded once with the state change, signed, retried, never holding a card or a recipient."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session

from distributor import notifications, outbox
from distributor.config import Settings
from distributor.constants import BatchEvent, BatchState, RowState
from distributor.db import get_engine, session_scope
from distributor.models import Notification, Row
from distributor.notifications import Notifier, Result
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings
from tests.factories import make_batch, make_row
from tests.notify_receiver import Receiver, running_receiver

SECRET = "notify-secret-for-tests"
CARD = "23403321042"
PIN = "908171"
RECIPIENT = "+64221231234"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def notify_settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(
        update={
            "batch_notify_url": receiver.url,
            "batch_notify_secret": SecretStr(SECRET),
            "dashboard_url": "https://ops.example.com/",
        }
    )


@pytest.fixture
def notifier(notify_settings: Settings) -> Iterator[Notifier]:
    sender = Notifier(notify_settings)
    yield sender
    sender.close()


def _batch_with_rows(settings: Settings, states: list[str]) -> int:
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, name="December gifts")
        for line, state in enumerate(states, start=1):
            row = make_row(
                session,
                batch=batch,
                vault=vault,
                card_number=f"{CARD[:-2]}{line:02d}",
                pin=PIN,
                recipient=RECIPIENT,
                state=state,
                line_no=line,
            )
            if state == RowState.FAILED:
                row.error_code = "INSUFFICIENT_WALLET_BALANCE"
        return batch.id


def _cancelled_batch(settings: Settings) -> int:
    """A batch of one pending row, cancelled: its notification waits in the outbox."""
    batch_id = _batch_with_rows(settings, [RowState.PENDING])
    with session_scope(settings.database_url) as session:
        batch_control.cancel(session, batch_id=batch_id, now=utcnow())
    return batch_id


def _notifications(settings: Settings, batch_id: int) -> list[Notification]:
    with session_scope(settings.database_url) as session:
        return list(outbox.for_batch(session, batch_id))


def test_a_batch_that_finishes_records_one_done_notification_with_its_counts(
    settings: Settings,
) -> None:
    batch_id = _batch_with_rows(settings, [RowState.SENT, RowState.SENT, RowState.FAILED])
    for _ in range(3):  # every settled row asks; only the first finish is an event
        with session_scope(settings.database_url) as session:
            batch_control.finish_if_settled(session, batch_id=batch_id, now=utcnow())
    [done] = _notifications(settings, batch_id)
    assert done.event == BatchEvent.DONE
    assert (done.counts["sent"], done.counts["failed"]) == (2, 1)
    assert done.failed == {"INSUFFICIENT_WALLET_BALANCE": 1}


def test_a_pause_records_a_paused_notification_with_its_reason_once(settings: Settings) -> None:
    batch_id = _batch_with_rows(settings, [RowState.PENDING])
    reason = "Centrapay answered 401 Unauthorized: check CENTRAPAY_API_KEY, then resume"
    for _ in range(2):  # a second worker's 401 finds the batch paused already
        with session_scope(settings.database_url) as session:
            batch_control.pause(session, batch_id=batch_id, reason=reason)
    [paused] = _notifications(settings, batch_id)
    assert (paused.event, paused.reason) == (BatchEvent.PAUSED, reason)


def test_a_cancel_records_a_cancelled_notification_after_cancelling_the_rows(
    settings: Settings,
) -> None:
    batch_id = _batch_with_rows(settings, [RowState.PENDING, RowState.SENT])
    with session_scope(settings.database_url) as session:
        batch_control.cancel(session, batch_id=batch_id, now=utcnow())
    [cancelled] = _notifications(settings, batch_id)
    assert cancelled.event == BatchEvent.CANCELLED
    assert (cancelled.counts["cancelled"], cancelled.counts["sent"]) == (1, 1)


def test_a_state_change_rolled_back_leaves_no_notification(settings: Settings) -> None:
    batch_id = _batch_with_rows(settings, [RowState.PENDING])
    with Session(get_engine(settings.database_url)) as session:
        batch_control.pause(session, batch_id=batch_id, reason="paused by an operator")
        session.rollback()  # the caller failed after the pause
    assert _notifications(settings, batch_id) == []


def test_the_notification_is_signed_over_the_exact_body_and_holds_no_card_pin_or_recipient(
    settings: Settings, notifier: Notifier, receiver: Receiver
) -> None:
    batch_id = _batch_with_rows(settings, [RowState.SENT, RowState.FAILED])
    with session_scope(settings.database_url) as session:
        batch_control.finish_if_settled(session, batch_id=batch_id, now=utcnow())
    [pending] = _notifications(settings, batch_id)
    assert notifier.attempt(pending.id).result is Result.SENT
    [got] = receiver.wait_for(1)
    signature = got.headers[notifications.SIGNATURE_HEADER]
    assert notifications.verify(SECRET, got.body, signature)
    assert not notifications.verify("another secret", got.body, signature)
    assert not notifications.verify(SECRET, got.body + b" ", signature)
    body = json.loads(got.body)
    assert body["event"] == "batch.done" == got.headers[notifications.EVENT_HEADER]
    assert body["id"] == pending.id
    assert body["batch"]["id"] == batch_id
    assert body["batch"]["name"] == "December gifts"
    assert body["batch"]["state"] == BatchState.DONE
    assert body["batch"]["dashboardUrl"] == f"https://ops.example.com/dashboard/batches/{batch_id}"
    assert (body["counts"]["sent"], body["counts"]["failed"]) == (1, 1)
    assert body["failedByErrorCode"] == {"INSUFFICIENT_WALLET_BALANCE": 1}
    for secret in (CARD[:-2], PIN, RECIPIENT, RECIPIENT[-4:] + '"'):
        assert secret.encode() not in got.body


def test_a_notification_answered_500_is_tried_again_after_a_backoff_then_sent_once(
    settings: Settings, notifier: Notifier, receiver: Receiver
) -> None:
    receiver.statuses.append(500)
    batch_id = _cancelled_batch(settings)
    [pending] = _notifications(settings, batch_id)
    first = notifier.attempt(pending.id)
    assert (first.result, first.retry_in) == (Result.RETRY, notifications.BACKOFF_SECONDS)
    [failed] = _notifications(settings, batch_id)
    assert (failed.attempts, failed.last_error, failed.sent_at) == (1, "answered 500", None)
    assert notifier.attempt(pending.id).result is Result.SENT
    assert notifier.attempt(pending.id).result is Result.NOT_MINE
    first_body, second_body = (one.body for one in receiver.wait_for(2))
    assert first_body == second_body  # the same signed bytes each time
    assert len(receiver.accepted()) == 1
    [sent] = _notifications(settings, batch_id)
    assert sent.sent_at is not None and sent.attempts == 2


def test_a_notification_is_given_up_after_the_last_attempt(
    settings: Settings, notifier: Notifier, receiver: Receiver
) -> None:
    receiver.statuses.extend([503] * notifications.MAX_ATTEMPTS)
    batch_id = _cancelled_batch(settings)
    [pending] = _notifications(settings, batch_id)
    results = []
    for _ in range(notifications.MAX_ATTEMPTS):
        results.append(notifier.attempt(pending.id).result)
        with session_scope(settings.database_url) as session:  # the backoff, skipped
            session.get_one(Notification, pending.id).claimed_until = None
    assert results == [Result.RETRY] * (notifications.MAX_ATTEMPTS - 1) + [Result.GAVE_UP]
    [given_up] = _notifications(settings, batch_id)
    assert given_up.given_up_at is not None and given_up.sent_at is None


def test_senders_racing_for_one_notification_post_it_once(
    settings: Settings, notify_settings: Settings, receiver: Receiver
) -> None:
    batch_id = _cancelled_batch(settings)
    [pending] = _notifications(settings, batch_id)
    senders = [Notifier(notify_settings) for _ in range(4)]
    results: list[Result] = []
    barrier = threading.Barrier(len(senders))

    def send(sender: Notifier) -> None:
        barrier.wait()
        results.append(sender.attempt(pending.id).result)

    threads = [threading.Thread(target=send, args=(sender,)) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sender in senders:
        sender.close()
    assert sorted(results) == sorted([Result.SENT] + [Result.NOT_MINE] * 3)
    assert len(receiver.received) == 1


def test_the_relay_queues_each_due_notification_once_until_its_message_is_lost(
    settings: Settings,
) -> None:
    _cancelled_batch(settings)
    queued: list[int] = []
    assert notifications.relay(database_url=settings.database_url, send=queued.append) == 1
    assert notifications.relay(database_url=settings.database_url, send=queued.append) == 0
    with session_scope(settings.database_url) as session:
        session.get_one(Notification, queued[0]).due_at = utcnow() - notifications.LOST_AFTER * 2
    assert notifications.relay(database_url=settings.database_url, send=queued.append) == 1
    assert queued == [queued[0], queued[0]]


def test_a_queue_that_refuses_the_message_leaves_the_notification_for_the_next_relay(
    settings: Settings,
) -> None:
    _cancelled_batch(settings)

    def refuse(_notification_id: int) -> None:
        raise ConnectionError("Redis is down")

    with pytest.raises(ConnectionError):
        notifications.relay(database_url=settings.database_url, send=refuse)
    queued: list[int] = []
    assert notifications.relay(database_url=settings.database_url, send=queued.append) == 1


def test_a_notify_url_without_a_secret_is_a_setting_error() -> None:
    with pytest.raises(ValueError, match="needs BATCH_NOTIFY_SECRET"):
        Settings(_env_file=None, batch_notify_url="https://hooks.example.com/x")  # type: ignore[call-arg]


def test_no_row_field_ever_reaches_the_outbox(settings: Settings) -> None:
    batch_id = _batch_with_rows(settings, [RowState.FAILED])
    with session_scope(settings.database_url) as session:
        batch_control.finish_if_settled(session, batch_id=batch_id, now=utcnow())
        row = session.query(Row).filter_by(batch_id=batch_id).one()
        assert row.recipient == RECIPIENT
        [stored] = outbox.for_batch(session, batch_id)
        text = json.dumps([stored.counts, stored.failed, stored.reason])
    assert RECIPIENT not in text and PIN not in text
