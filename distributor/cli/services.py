"""Commands that start a long-running part: migrations, API, workers, beat, sandbox."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from distributor import migrate
from distributor.cli.common import app, configure_logging, console, db_app, fail, load_settings
from distributor.constants import WORKER_QUEUES
from distributor.errors import ConfigError

DEFAULT_BEAT_SCHEDULE = Path(tempfile.gettempdir()) / "distributor-beat-schedule"


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the schema migrations (alembic upgrade head) to DATABASE_URL."""
    settings = load_settings()
    try:
        migrate.upgrade(settings.database_url, revision)
    except Exception as exc:
        raise fail(f"cannot migrate DATABASE_URL: {type(exc).__name__}: {exc}") from None
    console.print(f"database at revision {revision}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (API_PORT).")] = None,
) -> None:
    """Run the API (upload, batches, control) with uvicorn."""
    import uvicorn

    settings = load_settings()
    configure_logging()
    uvicorn.run(
        "distributor.api.app:create_service_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,
    )


def _celery_app() -> object:
    load_settings()
    try:
        from distributor.worker import app as celery_app
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None
    return celery_app


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Threads per worker (WORKER_CONCURRENCY).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    queues: Annotated[
        str,
        typer.Option(
            help="Comma-separated queues to consume: rows, and control work (sweeps, polls)."
        ),
    ] = ",".join(WORKER_QUEUES),
) -> None:
    """Run a Celery worker (threads pool) that loads and transfers rows and runs sweeps."""
    settings = load_settings()
    try:
        settings.require("centrapay_base_url", "centrapay_api_key", "centrapay_account_id")
        settings.require("distributor_secret_key")
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None
    celery_app = _celery_app()
    configure_logging(loglevel)
    argv = [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--queues={queues}",
        f"--loglevel={loglevel}",
    ]
    celery_app.worker_main(argv)  # type: ignore[attr-defined]


@app.command()
def beat(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    schedule_file: Annotated[
        Path, typer.Option(help="Where beat keeps its schedule state.")
    ] = DEFAULT_BEAT_SCHEDULE,
) -> None:
    """Run Celery beat: schedules the sweeper and the transfer poller (run exactly one)."""
    celery_app = _celery_app()
    configure_logging(loglevel)
    argv = ["beat", f"--loglevel={loglevel}", f"--schedule={schedule_file}"]
    celery_app.start(argv)  # type: ignore[attr-defined]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def sandbox(ctx: typer.Context) -> None:
    """Run the local Centrapay sandbox API, as python -m centrapay_sandbox (see --help)."""
    from centrapay_sandbox.cli import main as sandbox_main

    configure_logging()
    code = sandbox_main(list(ctx.args), prog="distributor sandbox")
    if code:
        raise typer.Exit(code)
