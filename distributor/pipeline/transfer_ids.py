"""Transfer ids whose answers were lost, found by one shared, incremental, bounded sync.

A row whose card is known to be transferred but whose transfer id was in a lost answer is
``sent`` with ``transfer_id`` NULL (``Row.transfer_id_pending``). Centrapay has no lookup
of a transfer by asset, so this module keeps a mirror of the account's sent-transfers
listing (``sent_transfers``) and fills those rows in from it. One run serves every
pending row at once, reads at most ``max_pages`` pages, and makes no call at all while no
row is pending: the cost never grows per row, nor with the history a row must wait behind.

The listing's order is not documented, so the sync reads it from the ``createdAt`` of the
first page and keeps both ends covered:

- head (newest first: new transfers come at the front): read from the first page until a
  page holds a transfer already mirrored, or the listing ends, so the mirror stays one
  piece. A walk that runs out of pages first leaves its page key (``transfers_gap_key``)
  and the next run goes on from there before it reads the front again. Skipped once the
  order is known to be oldest first.
- tail: go on from the page key where the last walk stopped, saving the key as it goes,
  while rows are still unmatched. Oldest first, that is where new transfers come; newest
  first, it is the older part of the listing no walk has reached yet (a row may learn it
  was transferred a while after its transfer was made). Either way each page is read
  about once per account, not once per row, and a long history is walked only as far as
  a pending row needs.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import exists, func, select, text, update
from sqlalchemy.orm import Session

from distributor.centrapay.client import CentrapayClient, Transfer, TransfersPage
from distributor.constants import RowState
from distributor.db import get_engine, session_scope
from distributor.errors import CentrapayTransient, DistributorError
from distributor.models import CentrapayAccount, Row, SentTransfer
from distributor.pipeline.accounts import upsert_account, upsert_insert
from distributor.pipeline.clock import utcnow

logger = logging.getLogger(__name__)

SYNC_MAX_PAGES = 20
"""Pages one run may read (2,000 transfers at Centrapay's page size of 100)."""
PAGE_TRIES = 3
"""A page that meets a timeout or a 5xx is asked again (within the run's page budget), so
one fault does not end a long walk."""
PENDING_MAX_ROWS = 10_000
SYNC_LOCK_PREFIX = "distributor:transfer-id-sync:"
"""Hashed with the account id into the advisory lock key of that account's sync."""
NEWEST_FIRST = "newest"
OLDEST_FIRST = "oldest"


@dataclass(frozen=True, kw_only=True)
class SyncReport:
    """What one run did: pages read, rows whose transfer id it filled in, rows still pending."""

    pages: int
    resolved: int
    pending: int


def pending_asset_ids(session: Session) -> set[str]:
    """Assets of sent rows whose transfer id is not known yet."""
    query = (
        select(Row.asset_id)
        .where(Row.state == RowState.SENT, Row.transfer_id.is_(None), Row.asset_id.is_not(None))
        .limit(PENDING_MAX_ROWS)
    )
    return {asset_id for asset_id in session.scalars(query) if asset_id}


def sync_transfer_ids(
    *, database_url: str, client: CentrapayClient, max_pages: int = SYNC_MAX_PAGES
) -> SyncReport:
    """Read what the listing has that the mirror lacks, then fill pending rows in from it.

    Stops early, keeping what it read, at the first error of the client (no token soon
    enough, Centrapay down): the next run goes on. A run that finds another one syncing
    the same account does nothing: two walks at once would each save where they stopped,
    and the later save could leave the pages between them unread.
    """
    with _alone(database_url, client.account_id) as alone:
        if not alone:
            with session_scope(database_url) as session:
                return SyncReport(pages=0, resolved=0, pending=len(pending_asset_ids(session)))
        return _sync(database_url=database_url, client=client, max_pages=max_pages)


@contextmanager
def _alone(database_url: str, account_id: str) -> Iterator[bool]:
    """True while no other process syncs the account: a Postgres advisory lock, held on a
    connection of its own, so the lock of a run whose process dies goes with it. SQLite
    serves one process (the standalone mode): always True."""
    engine = get_engine(database_url)
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = {"key": zlib.crc32(f"{SYNC_LOCK_PREFIX}{account_id}".encode())}
    with engine.connect() as connection:
        held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), key))
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                connection.commit()


def _sync(*, database_url: str, client: CentrapayClient, max_pages: int) -> SyncReport:
    with session_scope(database_url) as session:
        pending = pending_asset_ids(session)
        if not pending:
            return SyncReport(pages=0, resolved=0, pending=0)
        upsert_account(session, client.account_id)
        account = session.get_one(CentrapayAccount, client.account_id)
        order, tail_key = account.transfers_order, account.transfers_tail_key
        gap_key = account.transfers_gap_key
    walk = _Walk(database_url=database_url, client=client, pending=pending, budget=max_pages)
    walk.gap = gap_key
    try:
        # Before the first walk, the tail starts at the first page: it is the head too.
        if order != OLDEST_FIRST and (order is not None or tail_key is not None):
            if walk.gap is not None:
                walk.head(walk.gap)
            if walk.gap is None:
                walk.head(None)
            order = order or walk.order
        tail_key = walk.tail(tail_key)
    except DistributorError as error:
        logger.info("transfer-id sync stopped after %d pages: %s", walk.pages, error)
    with session_scope(database_url) as session:
        session.execute(
            update(CentrapayAccount)
            .where(CentrapayAccount.account_id == client.account_id)
            .values(
                transfers_order=order or walk.order,
                transfers_tail_key=tail_key,
                transfers_gap_key=walk.gap,
                transfers_synced_at=utcnow(),
            )
        )
        resolved = fill_in_transfer_ids(session)
        left = len(pending_asset_ids(session))
    if resolved:
        logger.info("transfer-id sync: %d rows got their transfer id", resolved)
    return SyncReport(pages=walk.pages, resolved=resolved, pending=left)


class _Walk:
    """One run's reading of the listing: pages stored as read, within a page budget."""

    def __init__(
        self, *, database_url: str, client: CentrapayClient, pending: set[str], budget: int
    ) -> None:
        self._database_url = database_url
        self._client = client
        self._missing = set(pending)
        self._budget = budget
        self.pages = 0
        self.order: str | None = None
        self.gap: str | None = None

    def head(self, page_key: str | None) -> None:
        """Read newest first from ``page_key`` (None: the first page) until a page holds a
        transfer mirrored before, or the listing ends.

        Every page down to the mirror is read, whether or not the pending rows are matched
        on the way: the mirror stays one piece, so a row that learns late that its card was
        transferred finds its transfer in it. ``gap`` is where a walk that ran out of pages
        (or met an error) goes on next time; None once the walk met the mirror.
        """
        while self.pages < self._budget:
            page = self._read(page_key)
            if self.order == OLDEST_FIRST and page_key is None:
                self._store(page, {})
                return  # the first page is the oldest: new transfers are the tail's
            self._store(page, {"transfers_gap_key": page.next_page_key})
            if self.gap is None:
                return
            page_key = self.gap

    def tail(self, page_key: str | None) -> str | None:
        """Walk from ``page_key`` while rows are unmatched; the key to go on from next time
        (at the listing's end, the key of its last page, which may still grow)."""
        while self._missing and self.pages < self._budget:
            page = self._read(page_key)
            self._store(page, {"transfers_tail_key": page.next_page_key or page_key})
            if page.next_page_key is None:
                break
            page_key = page.next_page_key
        return page_key

    def _read(self, page_key: str | None) -> TransfersPage:
        for tries_left in reversed(range(PAGE_TRIES)):
            try:
                page = self._client.sent_transfers_page(page_key)
                break
            except CentrapayTransient:
                self.pages += 1
                if not tries_left or self.pages >= self._budget:
                    raise
        self.pages += 1
        if self.order is None and page_key is None:
            self.order = _order_of(page.transfers)
        return page

    def _store(self, page: TransfersPage, keys: dict[str, str | None]) -> None:
        """Mirror the page and, in the same transaction, save where the walk goes on from.

        A run killed between two pages (its process dies) leaves the mirror and the keys
        agreeing: the next run goes on from the gap, where a walk from the front alone
        would stop at the first page this one stored and never read the pages in between.
        The head walk's gap is None once a page holds a transfer mirrored before: the walk
        has met the mirror.
        """
        ids = [transfer.id for transfer in page.transfers]
        with session_scope(self._database_url) as session:
            known = ids and session.scalar(
                select(exists().where(SentTransfer.transfer_id.in_(ids)))
            )
            if page.transfers:
                _upsert_transfers(session, self._client.account_id, page.transfers)
            if "transfers_gap_key" in keys:
                self.gap = None if known else keys["transfers_gap_key"]
                keys = {"transfers_gap_key": self.gap}
            if keys:
                session.execute(
                    update(CentrapayAccount)
                    .where(CentrapayAccount.account_id == self._client.account_id)
                    .values(keys)
                )
        self._missing -= {transfer.asset_id for transfer in page.transfers}


def _order_of(transfers: list[Transfer]) -> str | None:
    stamps = [transfer.created_at for transfer in transfers if transfer.created_at]
    if len(stamps) < 2 or stamps[0] == stamps[-1]:
        return None
    return NEWEST_FIRST if stamps[0] > stamps[-1] else OLDEST_FIRST


def _upsert_transfers(session: Session, account_id: str, transfers: list[Transfer]) -> None:
    statement = upsert_insert(session, SentTransfer).values(
        [
            {
                "transfer_id": transfer.id,
                "account_id": account_id,
                "asset_id": transfer.asset_id,
                "status": transfer.status,
                "created_at": transfer.created_at,
            }
            for transfer in transfers
        ]
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["transfer_id"], set_={"status": statement.excluded.status}
        )
    )


def fill_in_transfer_ids(session: Session) -> int:
    """Give each pending row the newest mirrored transfer of its asset; how many got one."""
    newest = (
        select(SentTransfer)
        .where(SentTransfer.asset_id == Row.asset_id)
        .order_by(SentTransfer.created_at.desc())
        .limit(1)
        .correlate(Row)
    )
    statement = (
        update(Row)
        .where(
            Row.state == RowState.SENT,
            Row.transfer_id.is_(None),
            exists().where(SentTransfer.asset_id == Row.asset_id),
        )
        .values(
            transfer_id=newest.with_only_columns(SentTransfer.transfer_id).scalar_subquery(),
            transfer_status=newest.with_only_columns(SentTransfer.status).scalar_subquery(),
            updated_at=func.now(),
        )
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]
