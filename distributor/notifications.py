"""Completion notifications: a signed JSON POST to BATCH_NOTIFY_URL when a batch is done,
paused or cancelled.

The body is built from the outbox row (``outbox``) and the batch; it holds counts, error
codes and the batch's name, never a card number, PIN or recipient. It is signed with
HMAC-SHA256 under BATCH_NOTIFY_SECRET over the exact bytes sent, in the
``X-Distributor-Signature`` header as ``sha256=<hex>``; ``verify`` shows how a receiver
checks it. A failed attempt (no answer, or not 2xx) is tried again with exponential
backoff, up to ``MAX_ATTEMPTS``: through Celery retries on the control queue in the
service, in the sweeping loop in standalone mode.

Warning: delivery is at least once. An answer lost after the receiver took the body
means the same notification comes again, with the same ``id``: receivers dedupe on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx

from distributor import outbox
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Batch, Notification
from distributor.pipeline.clock import utcnow

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Distributor-Signature"
EVENT_HEADER = "X-Distributor-Event"
ID_HEADER = "X-Distributor-Notification"
SIGNATURE_PREFIX = "sha256="

TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 8
"""With the backoff below, about four minutes of a receiver down before giving up."""
BACKOFF_SECONDS = 1.0
"""Wait after the first failure; it doubles after each."""
BACKOFF_MAX_SECONDS = 60.0
"""Longest wait: far below the broker's visibility_timeout, like every countdown."""
CLAIM_SECONDS = TIMEOUT_SECONDS * 3
"""How long a sender holds a notification: longer than any one attempt takes."""
LOST_AFTER = timedelta(minutes=5)
"""A notification whose attempt was due this long ago lost its message: queued again."""
MAX_AGE = timedelta(days=1)
"""Older unsent notifications are given up (say, BATCH_NOTIFY_URL set after weeks unset)."""
RELAY_SECONDS = 2.0
"""How often beat queues the notifications that are due: how late one goes out."""
RELAY_CHUNK = 100
"""Notifications queued (or, in standalone mode, sent) per run."""


class Result(StrEnum):
    """What one attempt came to."""

    SENT = "sent"
    RETRY = "retry"
    GAVE_UP = "gave up"
    NOT_MINE = "not mine"
    """Already sent or given up, or held by another sender: nothing done."""


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """The result of one attempt, and after how long to try again (``Result.RETRY``)."""

    result: Result
    retry_in: float = 0.0


def backoff_seconds(attempts: int) -> float:
    """The wait after ``attempts`` failed attempts."""
    return float(min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2 ** max(0, attempts - 1)))


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(secret: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` (the header's value) signs ``body``: what a receiver runs."""
    return hmac.compare_digest(sign(secret, body), signature)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def payload(notification: Notification, batch: Batch, *, dashboard_url: str) -> dict[str, Any]:
    """The JSON of one notification (see README.md, Completion notifications)."""
    return {
        "id": notification.id,
        "event": notification.event,
        "occurredAt": _iso(notification.created_at),
        "batch": {
            "id": batch.id,
            "name": batch.name,
            "state": batch.state,
            "reason": notification.reason,
            "startedAt": _iso(batch.started_at),
            "finishedAt": _iso(batch.finished_at),
            "dashboardUrl": f"{dashboard_url}/dashboard/batches/{batch.id}",
        },
        "counts": notification.counts,
        "failedByErrorCode": notification.failed,
    }


def encode(document: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact JSON, keys in a fixed order."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class Notifier:
    """Sends the outbox's notifications to BATCH_NOTIFY_URL; one per process."""

    def __init__(self, settings: Settings, *, client: httpx.Client | None = None) -> None:
        settings.require("batch_notify_url", "batch_notify_secret")
        assert settings.batch_notify_url is not None and settings.batch_notify_secret is not None
        self._url = settings.batch_notify_url
        self._secret = settings.batch_notify_secret.get_secret_value()
        self._dashboard_url = settings.public_dashboard_url()
        self._database_url = settings.database_url
        self._client = client or httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    def attempt(self, notification_id: int) -> Attempt:
        """Claim the notification, POST it once, record how it went."""
        now = utcnow()
        with session_scope(self._database_url) as session:
            notification = outbox.claim(
                session,
                notification_id=notification_id,
                now=now,
                hold=timedelta(seconds=CLAIM_SECONDS),
            )
            if notification is None:
                return Attempt(result=Result.NOT_MINE)
            batch = session.get_one(Batch, notification.batch_id)
            body = encode(payload(notification, batch, dashboard_url=self._dashboard_url))
            event, attempts = notification.event, notification.attempts
        error = self._post(body, event=event, notification_id=notification_id)
        now = utcnow()
        with session_scope(self._database_url) as session:
            if error is None:
                outbox.mark_sent(session, notification_id=notification_id, now=now)
                logger.info("notification %s (%s) sent", notification_id, event)
                return Attempt(result=Result.SENT)
            if attempts >= MAX_ATTEMPTS:
                outbox.mark_failed(
                    session, notification_id=notification_id, error=error, retry_at=None, now=now
                )
                logger.warning(
                    "notification %s (%s): giving up after %d attempts: %s",
                    notification_id,
                    event,
                    attempts,
                    error,
                )
                return Attempt(result=Result.GAVE_UP)
            wait = backoff_seconds(attempts)
            outbox.mark_failed(
                session,
                notification_id=notification_id,
                error=error,
                retry_at=now + timedelta(seconds=wait),
                now=now,
            )
        logger.info("notification %s: %s; again in %.0f s", notification_id, error, wait)
        return Attempt(result=Result.RETRY, retry_in=wait)

    def _post(self, body: bytes, *, event: str, notification_id: int) -> str | None:
        """None when the receiver answered 2xx; else what went wrong, for the log."""
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            EVENT_HEADER: event,
            ID_HEADER: str(notification_id),
        }
        try:
            answer = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"no answer: {type(exc).__name__}"
        if answer.is_success:
            return None
        return f"answered {answer.status_code}"

    def send_ready(self) -> int:
        """Standalone mode: one attempt at each notification that is due; how many were sent."""
        now = utcnow()
        with session_scope(self._database_url) as session:
            outbox.give_up_older_than(session, before=now - MAX_AGE, now=now)
            ids = outbox.ready(session, now=now, limit=RELAY_CHUNK)
        return sum(self.attempt(notification_id).result is Result.SENT for notification_id in ids)

    def unsent(self) -> int:
        """Notifications neither sent nor given up."""
        with session_scope(self._database_url) as session:
            return outbox.unsent_count(session)


def relay(*, database_url: str, send: Callable[[int], None]) -> int:
    """The service: ``send(id)`` (queue a send task) for each notification that needs one.

    The messages go out before the mark that they did is committed: a queue that refuses
    them (Redis down) leaves the notifications to the next run, not marked and lost.
    """
    now = utcnow()
    with session_scope(database_url) as session:
        outbox.give_up_older_than(session, before=now - MAX_AGE, now=now)
        ids = outbox.take_due(session, now=now, lost_after=LOST_AFTER, limit=RELAY_CHUNK)
        for notification_id in ids:
            send(notification_id)
    return len(ids)
