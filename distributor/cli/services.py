"""Commands that start a long-running part: migrations, API, workers, beat, sandbox."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from distributor import migrate
from distributor.cli.common import app, configure_logging, console, db_app, fail, load_settings
from distributor.config import SandboxSettings
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


@app.command()
def sandbox(
    port: Annotated[int | None, typer.Option(help="Port (SANDBOX_PORT).")] = None,
    latency_ms: Annotated[
        float | None, typer.Option(help="Added latency per request (SANDBOX_LATENCY_MS).")
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option(help="Requests/second per key, 0 = none (SANDBOX_RATE_LIMIT).")
    ] = None,
    fault_5xx: Annotated[
        float | None, typer.Option(help="Share of 5xx answers, 0..1 (SANDBOX_FAULT_5XX).")
    ] = None,
    fault_timeout: Annotated[
        float | None,
        typer.Option(help="Share applied then timed out, 0..1 (SANDBOX_FAULT_TIMEOUT)."),
    ] = None,
    fault_drop: Annotated[
        float | None,
        typer.Option(help="Share applied then dropped, 0..1 (SANDBOX_FAULT_DROP)."),
    ] = None,
    fault_429: Annotated[
        float | None, typer.Option(help="Share of 429 answers, 0..1 (SANDBOX_FAULT_429).")
    ] = None,
    rate_burst: Annotated[
        int | None, typer.Option(help="Burst of the rate limit (SANDBOX_RATE_BURST).")
    ] = None,
    cards: Annotated[Path | None, typer.Option(help="Card catalogue file (SANDBOX_CARDS).")] = None,
    time_scale: Annotated[
        float | None, typer.Option(help="How much faster the clock runs (SANDBOX_TIME_SCALE).")
    ] = None,
) -> None:
    """Run the local Centrapay sandbox API."""
    from distributor.centrapay.sandbox.server import serve as serve_sandbox
    from distributor.config import get_sandbox_settings

    try:
        base = get_sandbox_settings()
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None
    overrides = {
        "port": port,
        "latency_ms": latency_ms,
        "rate_limit": rate_limit,
        "fault_5xx": fault_5xx,
        "fault_timeout": fault_timeout,
        "fault_drop": fault_drop,
        "fault_429": fault_429,
        "rate_burst": rate_burst,
        "cards": cards,
        "time_scale": time_scale,
    }
    settings = SandboxSettings.model_validate(
        base.model_dump() | {key: value for key, value in overrides.items() if value is not None}
    )
    configure_logging()
    serve_sandbox(settings)
