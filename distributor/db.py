"""Engines and sessions, for Postgres (the service) and SQLite (standalone mode)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
POOL_SIZE = 20

_lock = threading.Lock()
_factories: dict[str, sessionmaker[Session]] = {}


class _NoFetchedRows(logging.Filter):
    """Drops SQLAlchemy's echo of each fetched row (DEBUG): rows hold recipients in clear.

    Statements are still echoed when an operator turns SQLAlchemy's logging on, and their
    parameters are hidden by the engines (``hide_parameters``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.DEBUG and record.msg == "Row %r")


logging.getLogger("sqlalchemy.engine.Engine").addFilter(_NoFetchedRows())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _create_engine(url: str) -> Engine:
    # hide_parameters: a failed statement's message (logged, shown in tracebacks) would
    # otherwise quote its values, and an insert of rows carries recipients in clear.
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
        pool_pre_ping=True,
        hide_parameters=True,
    )


def _factory(url: str) -> sessionmaker[Session]:
    with _lock:
        factory = _factories.get(url)
        if factory is None:
            factory = sessionmaker(_create_engine(url), expire_on_commit=False)
            _factories[url] = factory
        return factory


def get_engine(url: str) -> Engine:
    """The process's engine for ``url`` (one per URL: engines pool connections)."""
    engine = _factory(url).kw["bind"]
    assert isinstance(engine, Engine)
    return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    session = _factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (tests, shutdown, after fork)."""
    with _lock:
        for factory in _factories.values():
            factory.kw["bind"].dispose()
        _factories.clear()
