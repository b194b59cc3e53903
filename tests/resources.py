"""Databases and Redis numbers for tests and benchmarks, made and claimed so that parallel
runs on one machine never share or drop each other's."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from distributor.db import dispose_engines

PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_URL_BASE = os.environ.get("TEST_PG_URL_BASE", "postgresql+psycopg://postgres@127.0.0.1:5432/")
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379")


def admin(statement: str, database: str) -> None:
    """Run ``statement`` with ``{}`` standing for the quoted ``database`` name."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(database)))


@contextmanager
def fresh_database(prefix: str, *, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of ``template`` if given); dropped when the block ends."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if template is None:
        admin("CREATE DATABASE {}", name)
    else:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    try:
        yield PG_URL_BASE + name
    finally:
        dispose_engines()
        admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


@contextmanager
def claimed_redis_database(numbers: Iterable[int]) -> Iterator[str]:
    """The URL of the first of ``numbers`` no other run holds, held by a lock file."""
    for number in numbers:
        lock = Path(tempfile.gettempdir()) / f"distributor-test-redis-{number}.lock"
        handle = lock.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield f"{REDIS_SERVER}/{number}"
        finally:
            handle.close()
        return
    raise RuntimeError("every test Redis database is taken by another run")
