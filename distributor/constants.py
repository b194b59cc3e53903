"""Names and defaults shared across the package: Redis keys, queue names, row states.

Every Redis key the project writes starts with ``REDIS_PREFIX`` so an operator can see at a
glance what belongs to distributor on a shared Redis.
"""

from __future__ import annotations

from enum import StrEnum

REDIS_PREFIX = "distributor:"
BUCKET_KEY_PREFIX = REDIS_PREFIX + "bucket:"
REFRESH_KEY_PREFIX = REDIS_PREFIX + "transfer-refresh:"
"""One key per transfer a webhook hinted at: hints within a second fold into one lookup."""
ANSWERS_KEY_PREFIX = REDIS_PREFIX + "answers:"
"""One hash per batch: field ``<epoch second>:<answer class>`` holds how many Centrapay
calls made for the batch got that answer in that second (``answer_log``)."""
QUEUE_SENTINEL_KEY = REDIS_PREFIX + "queue-sentinel"
"""Set once the sweeper has rebuilt the queue; gone means Redis lost its data (restart,
flush, failover to an empty replica) and with it every queued message."""
QUEUE_LOSS_SEEN_KEY = REDIS_PREFIX + "queue-loss-seen"
"""When a dispatch first found the sentinel gone, before it marked rows enqueued: rows
marked since went to the queue as it is now, and the rebuild need not send them again."""

CELERY_QUEUE = "distributor"
"""The row queue: ``distributor.load_and_transfer`` messages, each the ids of rows of a batch."""
CONTROL_QUEUE = "distributor.control"
"""Sweeps, transfer polls, webhook refreshes, batch dispatch: never behind a row backlog."""
WORKER_QUEUES = (CELERY_QUEUE, CONTROL_QUEUE)
"""What a worker consumes unless told otherwise."""

CATEGORY_GIFTCARD = "giftcard"
ASSET_TYPES = ("epay.nzd.main", "epay.nzd.test")
ISSUERS = ("ezipay",)
DEFAULT_ASSET_TYPE = "epay.nzd.main"
DEFAULT_ISSUER = "ezipay"
MESSAGE_MAX_CHARS = 100
SENDER_NAME_MAX_CHARS = 30
"""Centrapay's limit on an asset transfer's ``senderName``."""
DESCRIPTION_MAX_CHARS = 200
"""Centrapay's limit on an asset transfer's ``description``."""
DEFAULT_PHONE_REGION = "NZ"
NZ_COUNTRY_CODE = 64

INSERT_CHUNK_ROWS = 2_000
DISPATCH_CHUNK_ROWS = 500
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1_000


class RowState(StrEnum):
    """Where one row of a batch stands; see the lifecycle in README.md."""

    PENDING = "pending"
    LOADING = "loading"
    LOADED = "loaded"
    TRANSFERRING = "transferring"
    SENT = "sent"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"


LIVE_STATES = (
    RowState.PENDING,
    RowState.LOADING,
    RowState.LOADED,
    RowState.TRANSFERRING,
    RowState.SENT,
)
"""States in which a row holds its card: at most one live row per card, across batches."""

IN_FLIGHT_STATES = (RowState.LOADING, RowState.TRANSFERRING)
"""States that carry a lease: a worker may be talking to Centrapay about this row."""

UNSETTLED_STATES = (
    RowState.PENDING,
    RowState.LOADING,
    RowState.LOADED,
    RowState.TRANSFERRING,
)
"""States a running batch still has work in."""


class BatchState(StrEnum):
    """Where a whole batch stands."""

    QUEUED = "queued"
    AWAITING_APPROVAL = "awaiting_approval"
    """Over APPROVAL_REQUIRED_ABOVE_ROWS: nothing is sent until an approver other than the
    uploader approves it (then queued, scheduled or running) or rejects it (cancelled)."""
    SCHEDULED = "scheduled"
    """Waiting for its ``start_at``; beat starts it then (or an operator, earlier)."""
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class Role(StrEnum):
    """What a user may do; each role may do everything the ones before it may."""

    VIEWER = "viewer"
    """Read batches, rows, reports, metrics and the audit trail."""
    OPERATOR = "operator"
    """Upload, start, pause, resume, cancel, retry."""
    APPROVER = "approver"
    """Operator, plus approve or reject a batch awaiting approval (not one they uploaded)."""
    ADMIN = "admin"
    """Everything, plus users and keys."""


ROLE_ORDER = (Role.VIEWER, Role.OPERATOR, Role.APPROVER, Role.ADMIN)
BOOTSTRAP_USER = "bootstrap"
"""Who a token of DISTRIBUTOR_API_TOKENS (or the CLI without DISTRIBUTOR_USER) acts as."""
USER_NAME_MAX_CHARS = 64


class BatchEvent(StrEnum):
    """What happened to a batch that the completion notification (BATCH_NOTIFY_URL) tells."""

    DONE = "batch.done"
    PAUSED = "batch.paused"
    CANCELLED = "batch.cancelled"


class TransferStatus(StrEnum):
    """Centrapay's asset-transfer lifecycle."""

    CREATED = "created"
    SENT = "sent"
    CLAIMED = "claimed"
    EXPIRED = "expired"
    RETURNED = "returned"
    CANCELLED = "cancelled"


FINAL_TRANSFER_STATUSES = (
    TransferStatus.CLAIMED,
    TransferStatus.RETURNED,
    TransferStatus.CANCELLED,
)
