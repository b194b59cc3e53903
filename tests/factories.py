"""Rows and batches written straight to the database, for tests of what comes after ingest,
and files stored through ingest as an upload stores them."""

from __future__ import annotations

import io

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.ingest import BatchOptions, IngestResult, ingest_csv
from distributor.models import Batch, Row
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow
from distributor.vault import Vault, vault_from_settings


def make_batch(session: Session, *, state: str = BatchState.RUNNING, name: str = "t.csv") -> Batch:
    """A batch of epay.nzd.test cards from ezipay."""
    batch = Batch(name=name, state=state, asset_type="epay.nzd.test", issuer="ezipay")
    session.add(batch)
    session.flush()
    return batch


def make_row(
    session: Session,
    *,
    batch: Batch,
    vault: Vault,
    card_number: str,
    pin: str = "1234",
    recipient: str = "+64221231234",
    state: str = RowState.PENDING,
    line_no: int = 1,
) -> Row:
    """A valid row of ``batch`` holding ``card_number``."""
    row = Row(
        batch_id=batch.id,
        line_no=line_no,
        state=state,
        recipient=recipient,
        recipient_masked="+64*****" + recipient[-4:],
        card_key=vault.card_key(
            issuer=batch.issuer, asset_type=batch.asset_type, card_number=card_number
        ),
        card_number_enc=vault.encrypt(card_number),
        card_masked="*******" + card_number[-5:],
        pin_enc=vault.encrypt(pin),
        message="Hello",
        asset_type=batch.asset_type,
        issuer=batch.issuer,
    )
    session.add(row)
    session.flush()
    return row


def store_running_batch(settings: Settings, cards: list[tuple[str, str, str]]) -> int:
    """A running batch with one pending row per (card number, PIN, recipient)."""
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state=BatchState.QUEUED)
        for line, (card, pin, recipient) in enumerate(cards, start=1):
            make_row(
                session,
                batch=batch,
                vault=vault,
                card_number=card,
                pin=pin,
                recipient=recipient,
                line_no=line,
            )
        batch_control.start(session, batch_id=batch.id, now=utcnow())
        return batch.id


def load_row(session: Session, row_id: int) -> Row:
    """The row, fresh from the database."""
    statement = select(Row).where(Row.id == row_id).execution_options(populate_existing=True)
    return session.execute(statement).scalar_one()


def ingest_bytes(
    database_url: str,
    data: bytes,
    *,
    vault: Vault,
    options: BatchOptions,
    max_rows: int,
    pin_required: bool = True,
) -> IngestResult:
    """Store ``data`` as a batch through ``ingest_csv``, in a transaction of its own."""
    with session_scope(database_url) as session:
        return ingest_csv(
            io.BytesIO(data),
            session=session,
            vault=vault,
            options=options,
            max_rows=max_rows,
            pin_required=pin_required,
        )
