"""The database schema: batches and their rows (SQLAlchemy 2.0, typed).

The same models serve Postgres (the service) and SQLite (standalone mode), so only
portable column types are used. Alembic builds the schema from distributor/migrations/, and a test
checks that it matches these models.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from distributor.constants import LIVE_STATES, USER_NAME_MAX_CHARS, BatchState, Role, RowState

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer(), "sqlite")
"""SQLite only autoincrements INTEGER PRIMARY KEY; Postgres gets a bigint identity."""

Timestamp = DateTime(timezone=True)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


LIVE_STATES_SQL = f"state IN ({_in(tuple(LIVE_STATES))})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Batch(Base):
    """One uploaded file and the defaults its rows were sent with."""

    __tablename__ = "batches"
    __table_args__ = (CheckConstraint(f"state IN ({_in(tuple(BatchState))})", name="state"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32), default=BatchState.QUEUED)
    pause_reason: Mapped[str | None] = mapped_column(Text)
    notice: Mapped[str | None] = mapped_column(Text)
    """Something operators should know that does not stop the batch (shown by status)."""
    asset_type: Mapped[str] = mapped_column(String(32))
    issuer: Mapped[str] = mapped_column(String(32))
    sender_name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        Timestamp, server_default=func.now(), onupdate=func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    start_at: Mapped[datetime | None] = mapped_column(Timestamp)
    """When a scheduled batch is to start (``distributor upload --start-at``)."""

    rows: Mapped[list[Row]] = relationship(back_populates="batch", passive_deletes=True)


class Row(Base):
    """One line of an uploaded file and how far it has got.

    The card number is kept only encrypted (``card_number_enc``) and the PIN only
    encrypted until the card is loaded, when it is wiped. ``card_key`` is an HMAC of
    issuer, type and card number: the partial unique index over live states stops two
    live rows, in any batches, from holding one card.
    """

    __tablename__ = "rows"
    __table_args__ = (
        CheckConstraint(f"state IN ({_in(tuple(RowState))})", name="state"),
        Index(
            "uq_rows_live_card_key",
            "card_key",
            unique=True,
            postgresql_where=text(LIVE_STATES_SQL),
            sqlite_where=text(LIVE_STATES_SQL),
        ),
        Index("ix_rows_batch_id_state", "batch_id", "state"),
        Index("ix_rows_state_lease_until", "state", "lease_until"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))

    recipient: Mapped[str | None] = mapped_column(String(320))
    recipient_masked: Mapped[str | None] = mapped_column(String(320))
    card_key: Mapped[str | None] = mapped_column(String(64))
    card_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    card_masked: Mapped[str | None] = mapped_column(String(32))
    pin_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    message: Mapped[str | None] = mapped_column(Text)
    sender_name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    asset_type: Mapped[str | None] = mapped_column(String(32))
    issuer: Mapped[str | None] = mapped_column(String(32))

    asset_id: Mapped[str | None] = mapped_column(String(64))
    transfer_id: Mapped[str | None] = mapped_column(String(64))
    transfer_status: Mapped[str | None] = mapped_column(String(16))

    load_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    transfer_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped by every claim: the fencing token of the worker holding the row (leases are
    renewed, so ``lease_until`` alone cannot tell one holder from the next)."""
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """The step's last call may have been applied without our knowing (a timeout, a dropped
    connection, a 5xx, a worker that died mid-call). The next attempt looks before it sends;
    on a failed row it means the card may have been delivered."""
    not_before: Mapped[datetime | None] = mapped_column(Timestamp)
    enqueued_at: Mapped[datetime | None] = mapped_column(Timestamp)

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_detail: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        Timestamp, server_default=func.now(), onupdate=func.now()
    )
    loaded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    transfer_checked_at: Mapped[datetime | None] = mapped_column(Timestamp)

    batch: Mapped[Batch] = relationship(back_populates="rows")

    @property
    def transfer_id_pending(self) -> bool:
        """Sent, but the answer that carried the transfer id was lost; the sync finds it."""
        return self.state == RowState.SENT and self.transfer_id is None

    @property
    def attempts(self) -> int:
        """Calls made for this row that counted as attempts (429s do not)."""
        return self.load_attempts + self.transfer_attempts


class CentrapayAccount(Base):
    """What this service has learnt about one Centrapay account it sends from."""

    __tablename__ = "centrapay_accounts"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    single_call_refused_at: Mapped[datetime | None] = mapped_column(Timestamp)
    """When Centrapay refused ``assetTransfer`` in a load: rows go in two calls from then on."""
    transfers_tail_key: Mapped[str | None] = mapped_column(Text)
    """Page key where the mirror's walk to the end of the sent-transfers listing goes on."""
    transfers_gap_key: Mapped[str | None] = mapped_column(Text)
    """Newest first: where a walk from the front that ran out of pages goes on."""
    transfers_order: Mapped[str | None] = mapped_column(String(8))
    """``newest`` or ``oldest`` first, as seen in the listing (Centrapay does not say)."""
    transfers_synced_at: Mapped[datetime | None] = mapped_column(Timestamp)


class SentTransfer(Base):
    """A mirror of the account's sent-transfers listing, kept only while rows need it.

    Filled by the transfer-id sync (``pipeline.transfer_ids``) for rows whose card is known
    to be transferred but whose transfer id was in an answer that was lost.
    """

    __tablename__ = "sent_transfers"
    __table_args__ = (Index("ix_sent_transfers_asset_id", "asset_id"),)

    transfer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str | None] = mapped_column(String(40))
    """Centrapay's ``createdAt`` as sent (ISO 8601): the newest transfer of an asset wins."""


UNSENT_SQL = "sent_at IS NULL AND given_up_at IS NULL"


class Notification(Base):
    """The outbox of completion notifications: one row per batch event to POST.

    Written in the transaction that changes the batch's state, so an event is recorded
    exactly when it happens, once however many workers saw it; a sender claims a row
    (``claimed_until``) before it POSTs, so two never send one at once. Holds counts and
    error codes only: never a card number, PIN or recipient.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index(
            "ix_notifications_unsent",
            "id",
            postgresql_where=text(UNSENT_SQL),
            sqlite_where=text(UNSENT_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    """Rows by state when the event happened."""
    failed: Mapped[dict[str, int]] = mapped_column(JSON)
    """Failed rows by error code when the event happened."""
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    due_at: Mapped[datetime | None] = mapped_column(Timestamp)
    """When the next attempt is expected (a message is on the queue for it); None: none is."""
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    given_up_at: Mapped[datetime | None] = mapped_column(Timestamp)


class User(Base):
    """Someone who may use the API, the dashboard or the CLI, with one role.

    Only the SHA-256 of the token is kept: the token itself is shown once, when made.
    """

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN ({_in(tuple(Role))})", name="role"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(USER_NAME_MAX_CHARS), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    token_rotated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    disabled_at: Mapped[datetime | None] = mapped_column(Timestamp)


class BatchApproval(Base):
    """The four-eyes record of a batch that had to wait for approval."""

    __tablename__ = "batch_approvals"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    uploaded_by: Mapped[str] = mapped_column(String(USER_NAME_MAX_CHARS))
    start_when_approved: Mapped[bool] = mapped_column(Boolean)
    """What the uploader asked for: start at once (or at ``start_at``), or stay queued."""
    decided_by: Mapped[str | None] = mapped_column(String(USER_NAME_MAX_CHARS))
    decided_at: Mapped[datetime | None] = mapped_column(Timestamp)
    approved: Mapped[bool | None] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """One action someone took, written in the transaction of its effect.

    Append-only (on Postgres a trigger refuses updates and deletes). ``details`` holds
    filters and counts: never a token, a card, a PIN or a recipient. ``batch_id`` has no
    foreign key, so an entry outlives anything it names.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_batch_id", "batch_id"),
        Index("ix_audit_log_actor", "actor"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp)
    actor: Mapped[str] = mapped_column(String(USER_NAME_MAX_CHARS))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[int | None] = mapped_column(Id)
    subject: Mapped[str | None] = mapped_column(String(USER_NAME_MAX_CHARS))
    """The user an action on users was about."""
    details: Mapped[dict[str, object]] = mapped_column(JSON)


class RowTransfer(Base):
    """A transfer a row had before it was resent to a corrected recipient.

    The row itself holds its current transfer; each resend first copies that one here, so a
    row keeps every transfer it has had. Only the masked recipient is kept: history is shown
    in reports, which never carry a clear recipient.
    """

    __tablename__ = "row_transfers"
    __table_args__ = (Index("ix_row_transfers_row_id", "row_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    row_id: Mapped[int] = mapped_column(ForeignKey("rows.id", ondelete="CASCADE"))
    transfer_id: Mapped[str | None] = mapped_column(String(64))
    """None when the transfer step failed before Centrapay made one (a refused recipient)."""
    transfer_status: Mapped[str | None] = mapped_column(String(16))
    recipient_masked: Mapped[str | None] = mapped_column(String(320))
    error_code: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    replaced_at: Mapped[datetime] = mapped_column(Timestamp)
    """When the resend that ended this transfer's turn was made."""
