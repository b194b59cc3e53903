"""The ``distributor`` command line: thin Typer commands over the same functions the API uses."""

from __future__ import annotations

from distributor.cli import batches, control, flower, keys, report, run, services
from distributor.cli.common import app

__all__ = ["app", "batches", "control", "flower", "keys", "report", "run", "services"]
