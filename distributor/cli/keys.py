"""``distributor keys``: make a new secret, and move stored secrets under the current one.

The rotation procedure is in README.md (Secret keys); the reasoning in ``distributor.keys``.
Output is counts and row ids, never a stored value.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

from distributor.access import audit
from distributor.access.actors import Action, require
from distributor.cli.batches import batch_session
from distributor.cli.common import acting_user, app, console, fail, load_settings
from distributor.errors import ConfigError
from distributor.keys import CHUNK_ROWS, RotationReport, generate_secret, keyring_from_settings
from distributor.keys import rotate_keys as rotate_all
from distributor.pipeline.clock import utcnow

ROW_IDS_SHOWN = 20

keys_app = typer.Typer(
    help="Secret keys: generate DISTRIBUTOR_SECRET_KEY, rotate stored secrets to it.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command()
def generate() -> None:
    """Print a fresh random secret for DISTRIBUTOR_SECRET_KEY (and nothing else)."""
    typer.echo(generate_secret())


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(row_id) for row_id in ids[:ROW_IDS_SHOWN])
    return shown + (f" and {len(ids) - ROW_IDS_SHOWN} more" if len(ids) > ROW_IDS_SHOWN else "")


def _print_report(report: RotationReport, *, check: bool) -> None:
    moved = "to rotate" if check else "rotated to the current secret"
    console.print(f"rows examined: {report.examined}", highlight=False)
    console.print(f"{moved}: {report.rotated}", highlight=False)
    console.print(f"already current: {report.current}", highlight=False)
    if report.unreadable:
        console.print(
            f"[red]unreadable:[/] {len(report.unreadable)} rows no configured secret decrypts; "
            "list the secret they were written under in DISTRIBUTOR_PREVIOUS_SECRET_KEYS and "
            f"run again (rows {_ids(report.unreadable)})",
            highlight=False,
        )
    if report.clashes:
        pairs = ", ".join(f"{row} and {holder}" for row, holder in report.clashes[:ROW_IDS_SHOWN])
        console.print(
            f"[red]held live twice:[/] {len(report.clashes)} rows hold a card another live row "
            f"holds (rows {pairs}); cancel one of each pair, then run again",
            highlight=False,
        )
    if report.busy:
        console.print(
            f"[yellow]changing:[/] {len(report.busy)} rows changed on every read; run again "
            f"(rows {_ids(report.busy)})",
            highlight=False,
        )


@keys_app.command()
def rotate(
    check: Annotated[
        bool, typer.Option("--check", help="Only count the rows not under the current secret.")
    ] = False,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = CHUNK_ROWS,
) -> None:
    """Re-encrypt every card number and PIN under DISTRIBUTOR_SECRET_KEY and re-key the cards.

    Safe to run while the service runs, and to run again. Exits 1 while any row still
    needs a previous secret: keep it in DISTRIBUTOR_PREVIOUS_SECRET_KEYS until a run ends 0.
    """
    settings = load_settings()
    with batch_session(settings) as session:
        actor = acting_user(session, settings)
        require(actor, Action.KEYS_ROTATE)
    try:
        keyring = keyring_from_settings(settings)
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None
    try:
        report = rotate_all(
            settings.database_url, keyring=keyring, chunk_rows=chunk_rows, write=not check
        )
    except DBAPIError as exc:
        reason = str(exc.orig).partition("\n")[0]
        raise fail(f"cannot rotate the rows at DATABASE_URL: {reason}") from None
    if not check:
        # The rotation runs in many transactions of its own: its entry, with its counts,
        # follows it in one more.
        with batch_session(settings) as session:
            audit.record(
                session,
                actor=actor,
                action=Action.KEYS_ROTATE,
                now=utcnow(),
                details={
                    "examined": report.examined,
                    "rotated": report.rotated,
                    "unreadable": len(report.unreadable),
                },
            )
    _print_report(report, check=check)
    if not report.complete or (check and report.rotated):
        raise typer.Exit(1)
    console.print(
        "every stored secret is under DISTRIBUTOR_SECRET_KEY: the previous secrets can be "
        "removed from DISTRIBUTOR_PREVIOUS_SECRET_KEYS",
        highlight=False,
    )
