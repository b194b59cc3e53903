"""Databases and Redis numbers for tests and benchmarks, made and claimed so that parallel
runs on one machine (and pytest-xdist's workers) never share or drop each other's."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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


def _database_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def _create(name: str, template: str | None) -> str:
    if template is None:
        admin("CREATE DATABASE {}", name)
    else:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    return name


def _drop(name: str) -> None:
    admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


@contextmanager
def fresh_database(prefix: str, *, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of ``template`` if given); dropped when the block ends."""
    name = _create(_database_name(prefix), template)
    try:
        yield PG_URL_BASE + name
    finally:
        dispose_engines()
        _drop(name)


# Everything a test could change in a database's schema, compared before its copy is reused.
SCHEMA_QUERIES = (
    """SELECT n.nspname, c.relname, c.relkind FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
         AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'""",
    """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_get_expr(d.adbin, d.adrelid)
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped""",
    """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
       WHERE connamespace = 'public'::regnamespace""",
    "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal",
    "SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc"
    " WHERE pronamespace = 'public'::regnamespace",
    "SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace",
    "SELECT extname, extversion FROM pg_extension",
)
KEPT_TABLES = ("alembic_version",)  # rows the template holds, kept when a copy is emptied


class SchemaChanged(Exception):
    """A test changed its database's schema: the database cannot be handed to another."""


def _connect(database: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(PG_ADMIN_DSN, dbname=database, autocommit=True)


def _schema(conn: psycopg.Connection[tuple[object, ...]]) -> list[list[tuple[object, ...]]]:
    found = [sorted(conn.execute(query).fetchall(), key=repr) for query in SCHEMA_QUERIES]
    kept = [
        name
        for name in KEPT_TABLES
        if conn.execute("SELECT to_regclass(%s)", [name]).fetchone() != (None,)
    ]
    found += [
        conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(n))).fetchall() for n in kept
    ]
    return found


class DatabaseCopies:
    """Databases of the template's schema, one per test at a time: each test gets one that
    no other test is using, with no rows and every sequence at its start, as a fresh copy.

    A used database is emptied in a background thread (TRUNCATE, about 25 ms) while the
    next test runs on another, and handed to a later test; one whose schema the test
    changed is dropped and replaced by a new copy. So no test waits for Postgres to copy
    and drop a database (about 0.25 s each, more on a busy machine).
    """

    ROTATION = 2  # databases per process: one in use while the other is emptied

    def __init__(self, template: str, *, prefix: str) -> None:
        self._template = template
        self._prefix = prefix
        with _connect(template) as conn:
            self._expected = _schema(conn)
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-copies")
        self._ready: list[Future[str]] = [
            self._background.submit(self._new_copy) for _ in range(self.ROTATION)
        ]

    def _new_copy(self) -> str:
        return _create(_database_name(self._prefix), self._template)

    def _emptied(self, name: str) -> str:
        """``name`` emptied for the next test, or a new copy in its place."""
        try:
            with _connect(name) as conn:
                conn.execute("SET lock_timeout = '5s'")
                # Connections the test left behind (a pool, a killed child's) hold locks.
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                if _schema(conn) != self._expected:
                    raise SchemaChanged(name)
                tables = [
                    sql.Identifier(str(schema), str(table))
                    for schema, table in conn.execute(
                        "SELECT schemaname, tablename FROM pg_tables"
                        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                    )
                    if table not in KEPT_TABLES
                ]
                if tables:
                    conn.execute(
                        sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                            sql.SQL(", ").join(tables)
                        )
                    )
                for schema, sequence in conn.execute(
                    "SELECT schemaname, sequencename FROM pg_sequences"
                ).fetchall():
                    conn.execute(
                        sql.SQL("ALTER SEQUENCE {} RESTART").format(
                            sql.Identifier(str(schema), str(sequence))
                        )
                    )
            return name
        except (psycopg.Error, SchemaChanged):
            _drop(name)
            return self._new_copy()

    @contextmanager
    def copy(self) -> Iterator[str]:
        """The URL of a database of the template's schema with no rows, for one test."""
        name = self._ready.pop(0).result()
        try:
            yield PG_URL_BASE + name
        finally:
            dispose_engines()
            self._ready.append(self._background.submit(self._emptied, name))

    def close(self) -> None:
        """Drop every database made, once the background thread is done with it."""
        names = [future.result() for future in self._ready]
        self._background.shutdown(wait=True)
        for name in names:
            _drop(name)


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


class TestGate:
    """A readers-writer lock over the tests of one pytest-xdist run, across its workers:
    every test holds it shared, a test that must have the machine to itself holds it alone.

    A test waiting to run alone closes the turnstile, so no other test starts meanwhile;
    it starts once the tests already running have finished.
    """

    __test__ = False  # not a test class, whatever its name

    def __init__(self, directory: Path) -> None:
        self._gate = (directory / "gate.lock").open("a")
        self._turnstile = (directory / "turnstile.lock").open("a")

    @contextmanager
    def held(self, *, alone: bool) -> Iterator[None]:
        """Hold the gate for one test: shared, or ``alone``."""
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._gate, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        except BaseException:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
            raise
        if not alone:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(self._turnstile, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock files."""
        self._gate.close()
        self._turnstile.close()
