"""The ``distributor`` command line: thin Typer commands over the same functions the API uses."""

from __future__ import annotations

from distributor.cli import (
    after_send,
    audit,
    batches,
    control,
    flower,
    keys,
    report,
    run,
    services,
    users,
)
from distributor.cli.common import app

__all__ = [
    "after_send",
    "app",
    "audit",
    "batches",
    "control",
    "flower",
    "keys",
    "report",
    "run",
    "services",
    "users",
]
