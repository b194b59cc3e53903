"""``distributor flower``: Flower, the Celery dashboard, always behind basic auth.

Flower shows every task's arguments (ours carry ids only) and can stop workers, so it never
starts without FLOWER_BASIC_AUTH. The credentials go to Flower as an argument inside this
process, not on a command line other users can read, and are never printed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from distributor.cli.common import app, configure_logging, fail, load_settings
from distributor.errors import ConfigError

LOOPBACK = "127.0.0.1"


@app.command()
def flower(
    address: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 to be reachable from other hosts.")
    ] = LOOPBACK,
    port: Annotated[int | None, typer.Option(help="Port to listen on (FLOWER_PORT).")] = None,
) -> None:
    """Run Flower for the workers, with basic auth from FLOWER_BASIC_AUTH (user:password)."""
    settings = load_settings()
    auth = settings.flower_basic_auth
    if auth is None or ":" not in auth.get_secret_value():
        raise fail("FLOWER_BASIC_AUTH must be set to user:password; Flower never runs open", code=2)
    try:
        from distributor.worker import app as celery_app
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None
    configure_logging()
    celery_app.start(
        [
            "flower",
            f"--basic-auth={auth.get_secret_value()}",
            f"--address={address}",
            f"--port={settings.flower_port if port is None else port}",
        ]
    )
