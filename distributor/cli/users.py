"""``distributor users``: add, list, disable users and rotate their tokens (admin only).

A token is printed once, when made; only its SHA-256 is stored.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from distributor import operator_actions
from distributor.access.actors import Action, require
from distributor.access.users import list_users
from distributor.cli.batches import acting_session
from distributor.cli.common import app, console, load_settings
from distributor.constants import Role
from distributor.pipeline.clock import utcnow

users_app = typer.Typer(help="Users and their roles (admin only).", no_args_is_help=True)
app.add_typer(users_app, name="users")

UserName = Annotated[str, typer.Argument(help="The user's name.")]


def _print_token(name: str, token: str) -> None:
    console.print(f"token of {name} (shown once, store it now):", highlight=False, markup=False)
    typer.echo(token)


@users_app.command("add")
def add(
    name: UserName,
    role: Annotated[Role, typer.Option("--role", help="What the user may do.")],
) -> None:
    """Create a user with a role and print their token, once."""
    settings = load_settings()
    with acting_session(settings) as (session, actor):
        token = operator_actions.add_user(session, actor, name=name, role=role, now=utcnow())
    _print_token(name, token)


@users_app.command("list")
def list_all() -> None:
    """Every user, with their role and whether they are disabled."""
    settings = load_settings()
    table = Table("name", "role", "created", "token rotated", "disabled")
    with acting_session(settings) as (session, actor):
        require(actor, Action.USERS_LIST)
        for user in list_users(session):
            table.add_row(
                user.name,
                user.role,
                user.created_at.isoformat(timespec="seconds"),
                user.token_rotated_at.isoformat(timespec="seconds")
                if user.token_rotated_at
                else "-",
                user.disabled_at.isoformat(timespec="seconds") if user.disabled_at else "-",
            )
    console.print(table)


@users_app.command("disable")
def disable(name: UserName) -> None:
    """Refuse the user's token from now on; what they did stays in the audit trail."""
    settings = load_settings()
    with acting_session(settings) as (session, actor):
        operator_actions.disable_user(session, actor, name=name, now=utcnow())
    console.print(f"user {name} disabled", highlight=False, markup=False)


@users_app.command("rotate-token")
def rotate_token(name: UserName) -> None:
    """Give the user a new token (printed once); the old one is refused from now on."""
    settings = load_settings()
    with acting_session(settings) as (session, actor):
        token = operator_actions.rotate_token(session, actor, name=name, now=utcnow())
    _print_token(name, token)
