"""The Typer app every command module registers on, and helpers they share."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

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


def fail(message: str, *, code: int = 1) -> typer.Exit:
    """Print one clear line to stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def load_settings() -> Settings:
    """The settings, or exit with one line naming the bad variable."""
    try:
        return get_settings()
    except DistributorError as exc:
        raise fail(str(exc), code=2) from None


def configure_logging(level: str = "INFO") -> None:
    """Plain, timestamped logs on stderr; httpx's line per request only when debugging."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLevelName(level) > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)
