"""The database side of an upload: the batch row, the live-card lookup, the bulk insert.

Runs inside the caller's transaction and never commits, so a file that is rejected
half-way stores nothing once the caller rolls back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from distributor.constants import BatchState
from distributor.ingest.values import BatchOptions
from distributor.models import LIVE_STATES_SQL, Batch, Row

_KEY_IN_DETAIL = re.compile(r"\(card_key\)=\(([0-9a-f]{64})\)")
_LIVE_CARD_CLASH = ("uq_rows_live_card_key", "UNIQUE constraint failed: rows.card_key")


@dataclass(frozen=True, slots=True)
class Holder:
    """The live row that holds a card: its batch and line."""

    batch_id: int
    line: int


def create_batch(session: Session, *, options: BatchOptions) -> Batch:
    """Add the batch (queued, no rows yet) and give it an id."""
    batch = Batch(
        name=options.name,
        state=BatchState.QUEUED,
        asset_type=options.asset_type,
        issuer=options.issuer,
        sender_name=options.sender_name,
        description=options.description,
        total_rows=0,
    )
    session.add(batch)
    session.flush()
    return batch


def live_holders(session: Session, *, card_keys: Iterable[str]) -> dict[str, Holder]:
    """The live rows, in any batch, holding any of ``card_keys``, by card key.

    Rows this transaction inserted are seen too. The keys (hex digests) are rendered
    into the SQL: Postgres then hashes the IN list whatever plan it picks, where a
    prepared statement's generic plan would compare each row with every key in turn.
    """
    keys = list(card_keys)
    if not keys:
        return {}
    query = select(Row.card_key, Row.batch_id, Row.line_no).where(
        Row.card_key.in_(bindparam("card_keys", keys, expanding=True, literal_execute=True)),
        text(LIVE_STATES_SQL),
    )
    return {key: Holder(batch_id, line) for key, batch_id, line in session.execute(query) if key}


def _copy_rows(connection: psycopg.Connection[Any], rows: Sequence[Mapping[str, Any]]) -> None:
    columns = list(rows[0])
    statement = f"COPY {Row.__tablename__} ({', '.join(columns)}) FROM STDIN"
    try:
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def insert_rows(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts of Row columns, all with the same keys) in one go.

    Postgres through psycopg gets COPY, far faster than an executemany;
    SQLite (standalone mode) the executemany. Driver errors come out as SQLAlchemy's
    (a unique violation as IntegrityError) either way.
    """
    if not rows:
        return
    driver_connection = session.connection().connection.driver_connection
    if isinstance(driver_connection, psycopg.Connection):
        _copy_rows(driver_connection, rows)
    else:
        session.execute(insert(Row), rows)


def is_live_card_clash(exc: IntegrityError) -> bool:
    """True when ``exc`` is the live-card index refusing a second live row for one card."""
    return any(marker in str(exc.orig) for marker in _LIVE_CARD_CLASH)


def taken_card_key(exc: IntegrityError) -> str | None:
    """The card key named by a clash on the live-card index, when the driver names it."""
    match = _KEY_IN_DETAIL.search(str(exc.orig))
    return match.group(1) if match else None


def finish_batch(session: Session, *, batch: Batch, total_rows: int) -> None:
    """Record how many rows the batch has."""
    batch.total_rows = total_rows
    session.flush()
