"""Secret-key rotation: every stored secret moved under the current DISTRIBUTOR_SECRET_KEY.

``rotate_keys`` walks the rows by id, ``CHUNK_ROWS`` at a time, each chunk in a transaction
of its own. For each row it re-encrypts the card number and the PIN under the current
secret (``MultiFernet.rotate``) and recomputes ``card_key`` with it. A row already under the
current secret is left alone, so a rerun only does what is left: after a crash, a Ctrl-C,
or rows that an older process wrote meanwhile. Once a run reports nothing left, no row
needs an older secret, and it can be removed from DISTRIBUTOR_PREVIOUS_SECRET_KEYS.

Why this is safe while the service runs:

- **The live-card index holds at every moment.** The index makes ``card_key`` unique among
  live rows. A key is an HMAC of the card under one secret, so two secrets' keys never
  collide (2**-256), and under one secret equal keys mean the same card. Re-keying a live
  row can therefore only clash with another live row of the *same card*, and there is none:
  uploads look a card up under every configured secret (``Vault.card_keys``) before
  storing it. So re-keying changes values, never uniqueness, whichever rows a chunk holds.
- **Any chunk boundary is a consistent state.** Between chunks the table mixes keys of the
  old and the new secret. That is the state the service is always ready for while
  DISTRIBUTOR_PREVIOUS_SECRET_KEYS lists the old secret: decryption tries every secret and
  duplicate checks look for every key. A run stopped anywhere is simply run again.
- **Concurrent uploads.** An upload's duplicate look-up is one statement: it sees a live
  row of the same card committed with either its old or its new key, and looks for both.
  Rows uploaded under the current secret are already current and skipped.
- **Concurrent workers.** Each update is a compare-and-set on the three values read
  (``card_number_enc``, ``pin_enc``, ``card_key``): a row a worker changed in between
  (a PIN wiped at load, a row cancelled) is read again, so a wiped PIN is never written
  back. Rows in flight may get a new key: the key is ours alone (Centrapay never sees it),
  so a step under way is not disturbed (``pipeline.steps``).
- **If the invariant was broken anyway** (two live rows of one card under different
  secrets: an upload by a process still configured with the old secret as current, racing
  one with the new), re-keying the one under the old secret would violate the index. The
  chunk is then redone with a savepoint per row, that row keeps its old key, and the run
  reports the pair (row ids only) so an operator can cancel one; the old secret must stay
  until then.

Warning: until a run completes, ``retry`` (``pipeline.retry``) compares card keys as
stored, under one secret: a failed row keyed under the old secret whose card was uploaded
again under the new one is not refused, and would make the card live twice (an xfail test
in tests/integration/security says so). Rotate right after switching secrets, before
retrying failed rows; once rotated, retry refuses such rows again.

Warning: rotate only after every process (API, workers, beat, CLI) runs with the new secret
as DISTRIBUTOR_SECRET_KEY and the old one in DISTRIBUTOR_PREVIOUS_SECRET_KEYS. A process
still on the old secret writes rows a finished run has not seen; run again (or ``--check``)
once none is left, before removing the old secret.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.constants import LIVE_STATES
from distributor.db import session_scope
from distributor.ingest import store
from distributor.models import Row
from distributor.vault import Vault, make_vault, vault_from_settings

logger = logging.getLogger(__name__)

CHUNK_ROWS = 500  # rows per transaction: row locks are held for milliseconds, not minutes
CAS_ATTEMPTS = 3  # reads of a row that keeps changing under the rotation, in one run
CHUNK_ATTEMPTS = 3  # tries of a chunk that Postgres aborted (deadlock, serialization)
SECRET_BYTES = 48  # random bytes of a generated secret: 64 URL-safe characters
_RETRYABLE_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure


def generate_secret() -> str:
    """A fresh random secret for DISTRIBUTOR_SECRET_KEY (64 URL-safe characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


@dataclass(frozen=True, kw_only=True)
class Keyring:
    """The vault of every configured secret, and the vault of the current secret alone."""

    every: Vault
    current: Vault


def keyring_from_settings(settings: Settings) -> Keyring:
    """The keyring of DISTRIBUTOR_SECRET_KEY and DISTRIBUTOR_PREVIOUS_SECRET_KEYS."""
    every = vault_from_settings(settings)
    assert settings.distributor_secret_key is not None
    return Keyring(
        every=every, current=make_vault(settings.distributor_secret_key.get_secret_value())
    )


@dataclass(kw_only=True)
class RotationReport:
    """What a run found and did; row ids only, never a stored value."""

    examined: int = 0
    rotated: int = 0
    """Rows moved to the current secret (``check``: rows that would be)."""
    current: int = 0
    """Rows already under the current secret."""
    unreadable: list[int] = field(default_factory=list)
    """Rows no configured secret decrypts (or missing what their card key is made of)."""
    clashes: list[tuple[int, int]] = field(default_factory=list)
    """(row, live row): two live rows of one card; the first keeps its old key."""
    busy: list[int] = field(default_factory=list)
    """Rows that changed on every read in this run; a rerun takes them."""
    last_id: int = 0

    @property
    def complete(self) -> bool:
        """True when every row is under the current secret (after this run's writes)."""
        return not (self.unreadable or self.clashes or self.busy)

    def add(self, other: RotationReport) -> None:
        """Fold a chunk's report into this one."""
        self.examined += other.examined
        self.rotated += other.rotated
        self.current += other.current
        self.unreadable.extend(other.unreadable)
        self.clashes.extend(other.clashes)
        self.busy.extend(other.busy)
        self.last_id = max(self.last_id, other.last_id)


@dataclass(frozen=True, kw_only=True)
class _Stored:
    """The columns of a row that hold or derive from a secret, as read."""

    id: int
    card_number_enc: bytes | None
    pin_enc: bytes | None
    card_key: str | None
    issuer: str | None
    asset_type: str | None


class _Unreadable(Exception):
    """The row cannot be moved: no configured secret decrypts it."""


_COLUMNS = (Row.id, Row.card_number_enc, Row.pin_enc, Row.card_key, Row.issuer, Row.asset_type)


def _under_current(keyring: Keyring, token: bytes) -> bool:
    try:
        keyring.current.fernet.decrypt(token)
    except InvalidToken:
        return False
    return True


def _renewed_token(keyring: Keyring, token: bytes | None) -> bytes | None:
    if token is None or _under_current(keyring, token):
        return token
    try:
        return keyring.every.rotate(token)
    except InvalidToken:
        raise _Unreadable from None


def _renewed(keyring: Keyring, row: _Stored) -> dict[str, Any]:
    """The row's secret columns under the current secret (unchanged ones included)."""
    card_key = row.card_key
    if card_key is not None:
        if row.card_number_enc is None or not (row.issuer and row.asset_type):
            raise _Unreadable
        try:
            card_number = keyring.every.fernet.decrypt(row.card_number_enc).decode()
        except InvalidToken:
            raise _Unreadable from None
        card_key = keyring.current.card_key(
            issuer=row.issuer, asset_type=row.asset_type, card_number=card_number
        )
    return {
        "card_number_enc": _renewed_token(keyring, row.card_number_enc),
        "pin_enc": _renewed_token(keyring, row.pin_enc),
        "card_key": card_key,
    }


def _as_stored(row: _Stored) -> dict[str, Any]:
    return {
        "card_number_enc": row.card_number_enc,
        "pin_enc": row.pin_enc,
        "card_key": row.card_key,
    }


def _read(session: Session, *, after_id: int, limit: int) -> list[_Stored]:
    query = select(*_COLUMNS).where(Row.id > after_id).order_by(Row.id).limit(limit)
    return [_Stored(**row._asdict()) for row in session.execute(query)]


def _reread(session: Session, ids: Sequence[int]) -> list[_Stored]:
    query = select(*_COLUMNS).where(Row.id.in_(ids)).order_by(Row.id)
    return [_Stored(**row._asdict()) for row in session.execute(query)]


def _compare_and_set(session: Session, row: _Stored, values: dict[str, Any]) -> bool:
    """Write ``values`` if the row still holds what was read; False if it changed."""
    statement = (
        update(Row)
        .where(
            Row.id == row.id,
            Row.card_number_enc.is_not_distinct_from(row.card_number_enc),
            Row.pin_enc.is_not_distinct_from(row.pin_enc),
            Row.card_key.is_not_distinct_from(row.card_key),
        )
        # A rotation is not an event of the row: updated_at keeps its value.
        .values(**values, updated_at=Row.updated_at)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def _live_holder(session: Session, row_id: int, card_key: str) -> int:
    query = select(Row.id).where(
        Row.card_key == card_key, Row.id != row_id, Row.state.in_(LIVE_STATES)
    )
    return session.scalars(query.limit(1)).first() or 0


WRITTEN, CHANGED, CLASHED = "written", "changed", "clashed"


def _write(session: Session, row: _Stored, values: dict[str, Any], *, guarded: bool) -> str:
    """Write one row: WRITTEN, CHANGED since it was read, or CLASHED on the live-card index.

    Unguarded, a clash raises IntegrityError and aborts the transaction; guarded, the
    write runs in a savepoint that is rolled back alone.
    """
    if not guarded:
        return WRITTEN if _compare_and_set(session, row, values) else CHANGED
    try:
        with session.begin_nested():
            return WRITTEN if _compare_and_set(session, row, values) else CHANGED
    except IntegrityError as exc:
        if not store.is_live_card_clash(exc):
            raise
        return CLASHED


def rotate_chunk(
    session: Session,
    *,
    keyring: Keyring,
    after_id: int,
    limit: int = CHUNK_ROWS,
    write: bool = True,
    guarded: bool = False,
) -> RotationReport:
    """Move the first ``limit`` rows with an id above ``after_id`` to the current secret.

    Runs in the caller's transaction. ``write=False`` only counts. ``guarded`` wraps each
    write in a savepoint, so that a row the live-card index refuses is reported instead of
    aborting the chunk (IntegrityError otherwise). ``last_id`` of the result is where the
    next chunk starts (0: no row was left).
    """
    report = RotationReport()
    rows = _read(session, after_id=after_id, limit=limit)
    report.examined = len(rows)
    report.last_id = rows[-1].id if rows else 0
    for attempt in range(1, CAS_ATTEMPTS + 1):
        changed: list[int] = []
        for row in rows:
            try:
                values = _renewed(keyring, row)
            except _Unreadable:
                report.unreadable.append(row.id)
                continue
            if values == _as_stored(row):
                report.current += 1
                continue
            outcome = _write(session, row, values, guarded=guarded) if write else WRITTEN
            if outcome == WRITTEN:
                report.rotated += 1
            elif outcome == CHANGED:
                changed.append(row.id)
            else:
                holder = _live_holder(session, row.id, values["card_key"])
                report.clashes.append((row.id, holder))
        if not changed:
            break
        if attempt == CAS_ATTEMPTS:
            report.busy.extend(changed)
            break
        rows = _reread(session, changed)
    return report


def _retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _one_chunk(
    database_url: str, *, keyring: Keyring, after_id: int, limit: int, write: bool
) -> RotationReport:
    """One chunk in its own transaction: redone guarded on a clash, again after a deadlock."""
    guarded = False
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            with session_scope(database_url) as session:
                return rotate_chunk(
                    session,
                    keyring=keyring,
                    after_id=after_id,
                    limit=limit,
                    write=write,
                    guarded=guarded,
                )
        except IntegrityError as exc:
            if guarded or not store.is_live_card_clash(exc):
                raise
            guarded = True
        except DBAPIError as exc:
            if attempt == CHUNK_ATTEMPTS or not _retryable(exc):
                raise
            logger.info("key rotation: rows after id %s retried after %s", after_id, exc.code)
    raise AssertionError("unreachable: the last attempt returns or raises")


def rotate_keys(
    database_url: str,
    *,
    keyring: Keyring,
    chunk_rows: int = CHUNK_ROWS,
    write: bool = True,
    on_chunk: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    """Move every row to the current secret, chunk by chunk; ``write=False`` only counts.

    Idempotent: rows already current are counted and left alone. ``on_chunk`` is called
    with the running totals after each chunk.
    """
    total = RotationReport()
    after_id = 0
    while True:
        chunk = _one_chunk(
            database_url, keyring=keyring, after_id=after_id, limit=chunk_rows, write=write
        )
        if not chunk.examined:
            break
        total.add(chunk)
        after_id = chunk.last_id
        logger.info(
            "key rotation: %d rows examined, %d %s, %d already current",
            total.examined,
            total.rotated,
            "rotated" if write else "to rotate",
            total.current,
        )
        if on_chunk is not None:
            on_chunk(total)
    return total
