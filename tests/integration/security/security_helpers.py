"""Reading the database raw, as an attacker with a dump would, and looking for secrets in text;
the test data (distinctive values) and the list of an app's routes.

Every needle is looked for as written and as the hex of its bytes: Postgres shows a
``bytea`` column as hex, so a plaintext PIN stored in one would show up that way.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterable

import psycopg
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy.engine import make_url

from distributor.ingest import BatchOptions, IngestResult
from distributor.vault import Vault
from tests.conftest import TEST_API_TOKEN, TEST_SECRET_KEY
from tests.factories import ingest_bytes


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as libpq and psycopg take it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    found = conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [str(name) for (name,) in found]


def _bytea_columns(conn: psycopg.Connection[tuple[object, ...]], table: str) -> list[str]:
    found = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s AND data_type = 'bytea'",
        (table,),
    ).fetchall()
    return [str(name) for (name,) in found]


def raw_dump(database_url: str) -> str:
    """Every column of every row of every table, three ways, as one text.

    ``SELECT t::text`` (each row as Postgres prints it), ``COPY ... TO STDOUT`` (what a
    plain dump holds), and each ``bytea`` column decoded with ``encode(..., 'escape')``
    (the bytes as text, not hex).
    """
    out = io.StringIO()
    with psycopg.connect(libpq_url(database_url)) as conn:
        for table in _tables(conn):
            name = sql.Identifier(table)
            out.write(f"-- {table}: rows as text\n")
            for (text,) in conn.execute(sql.SQL("SELECT t::text FROM {} AS t").format(name)):
                out.write(f"{text}\n")
            out.write(f"-- {table}: COPY TO STDOUT\n")
            with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(name)) as copy:
                for block in copy:
                    out.write(bytes(block).decode())
            for column in _bytea_columns(conn, table):
                out.write(f"-- {table}.{column}: bytes as text\n")
                query = sql.SQL("SELECT encode({}, 'escape') FROM {}").format(
                    sql.Identifier(column), name
                )
                for (text,) in conn.execute(query):
                    out.write(f"{text}\n")
    return out.getvalue()


def pg_dump_text(database_url: str) -> str | None:
    """``pg_dump --data-only`` of the database, or None when pg_dump is not installed."""
    if shutil.which("pg_dump") is None:
        return None
    done = subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", libpq_url(database_url)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def found_secrets(text: str, needles: Iterable[str]) -> list[str]:
    """The needles that appear in ``text``, as written or as the hex of their UTF-8 bytes."""
    lowered = text.lower()
    return [needle for needle in needles if needle in text or needle.encode().hex() in lowered]


# Distinctive values: a hit in a dump is a real leak, not a timestamp or an id.
CARDS = ("23407319468", "23407319469", "23407319470", "23407319471")
PINS = ("58203917", "58203918", "58203919", "58203920", "58203921")
UPLOAD = (
    "recipientAlias,cardNumber,pin,message\n"
    f"+64227391846,{CARDS[0]},{PINS[0]},Kia ora\n"
    f"+64227391847,2340-7319-469,{PINS[1]},card written with dashes\n"
    f"+64227391848,{CARDS[2]},{PINS[2]},third\n"
    f"Bob,{CARDS[3]},{PINS[3]},invalid recipient: stored, never sent\n"
    f"+64227391849,{CARDS[0]},{PINS[4]},the card of line 2 again: a duplicate\n"
)
NEEDLES = (*CARDS, "2340-7319-469", *PINS, TEST_SECRET_KEY, TEST_API_TOKEN)
OPTIONS = BatchOptions(name="cards.csv", asset_type="epay.nzd.main", issuer="ezipay")


def upload(database_url: str, vault: Vault, text: str = UPLOAD) -> IngestResult:
    """Store ``text`` as a batch the way every upload does."""
    return ingest_bytes(database_url, text.encode(), vault=vault, options=OPTIONS, max_rows=100)


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, dashboard and hidden ones included.

    FastAPI keeps an included router either as its routes (older versions) or as one
    entry whose effective routes it lists (newer ones); both are walked.
    """
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for item in contexts() if callable(contexts) else [route]:
            for method in getattr(item, "methods", None) or ():
                found.add((method, item.path))
    return found
