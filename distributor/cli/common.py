"""The Typer app every command module registers on, and helpers they share."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from celery.app import trace as celery_trace
from rich.console import Console
from sqlalchemy.orm import Session

from distributor.access.actors import BOOTSTRAP, Actor
from distributor.access.users import actor_named
from distributor.config import Settings, get_settings
from distributor.errors import DistributorError

app = typer.Typer(
    name="distributor",
    help="Bulk giftcard distribution through the Centrapay API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)

_acting_as: list[str] = []
"""The --as NAME of this invocation, if given (set by the app's callback)."""


@app.callback()
def main(
    acting_as: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="NAME",
            help="Act as this user [default: DISTRIBUTOR_USER; unset, the bootstrap admin].",
        ),
    ] = None,
) -> None:
    """Bulk giftcard distribution through the Centrapay API."""
    _acting_as.clear()
    if acting_as is not None:
        _acting_as.append(acting_as)


def acting_user(session: Session, settings: Settings) -> Actor:
    """Whom this command acts as: --as, else DISTRIBUTOR_USER, else the bootstrap admin.

    The CLI works on the database directly, so whoever runs it with DATABASE_URL could act
    as anyone: the name attributes its actions in the audit trail, and the role keeps a
    user to what they may do. A name that is unknown or disabled is refused.
    """
    name = _acting_as[0] if _acting_as else settings.distributor_user
    return BOOTSTRAP if name is None else actor_named(session, name)


def fail(message: str, *, code: int = 1) -> typer.Exit:
    """Print one clear line to stderr and return the Exit to raise."""
    err_console.print(
        f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True
    )
    return typer.Exit(code)


def load_settings() -> Settings:
    """The settings, or exit with one line naming the bad variable."""
    try:
        return get_settings()
    except DistributorError as exc:
        raise fail(str(exc), code=2) from None


PER_MESSAGE_LOGGERS = ("httpx", "celery.worker.strategy")
"""Loggers of a line per request (httpx) or per task message received (Celery): quiet but
for warnings unless debugging."""


def _not_a_success(record: logging.LogRecord) -> bool:
    """Celery's "Task ... succeeded" line, one per row: with "received", about 5% of a
    worker's CPU at full speed, and nothing the row's state does not tell. Its lines for
    retries and failures stay."""
    return record.msg != celery_trace.LOG_SUCCESS


def configure_logging(level: str = "INFO") -> None:
    """Plain, timestamped logs on stderr; a line per request or task only when debugging."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLevelName(level) > logging.DEBUG:
        for name in PER_MESSAGE_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger(celery_trace.__name__).addFilter(_not_a_success)
