"""Starting the sandbox: in a background thread for tests (``running_sandbox``), or in the
foreground for ``python -m centrapay_sandbox`` (``serve``)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from centrapay_sandbox.app import create_app
from centrapay_sandbox.config import SandboxSettings, get_sandbox_settings
from centrapay_sandbox.gate import Gate
from centrapay_sandbox.runtime import build_sandbox

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 10.0
STARTUP_POLL_SECONDS = 0.01
GRACEFUL_SHUTDOWN_SECONDS = 1
STOP_TIMEOUT_SECONDS = 10.0
LISTEN_BACKLOG = 2048


@dataclass(frozen=True)
class SandboxHandle:
    """A sandbox running in the background: where to reach it."""

    host: str
    port: int

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: prefix of ``/api/...`` and ``/_sandbox/...``."""
        return f"http://{self.host}:{self.port}"


def build_asgi_app(settings: SandboxSettings) -> Gate:
    """The whole sandbox as one ASGI app; ConfigError for bad API keys or catalogue."""
    sandbox = build_sandbox(settings)
    return Gate(create_app(sandbox), sandbox)


def _config(app: Gate, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        access_log=False,
        ws="none",
        lifespan="on",
        proxy_headers=False,
        server_header=False,
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


@contextmanager
def running_sandbox(
    settings: SandboxSettings | None = None, *, port: int = 0
) -> Iterator[SandboxHandle]:
    """Run a sandbox on 127.0.0.1 (a free port by default) until the block ends.

    Starts uvicorn in a daemon thread, returns once it accepts connections, and stops it
    (waiting for the thread) on the way out.
    """
    app = build_asgi_app(settings or get_sandbox_settings())
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, port))
    server = uvicorn.Server(_config(app, host=LOOPBACK, port=port, log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="centrapay-sandbox", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        yield SandboxHandle(host=LOOPBACK, port=listener.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_SECONDS)
        listener.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start; see the log")
        time.sleep(STARTUP_POLL_SECONDS)


def serve(settings: SandboxSettings) -> None:
    """Run the sandbox in the foreground until interrupted (Ctrl-C)."""
    app = build_asgi_app(settings)
    if settings.host not in (LOOPBACK, "localhost", "::1"):
        logger.warning(
            "sandbox listens on %s: its /_sandbox control routes need no key", settings.host
        )
    logger.info(
        "Centrapay sandbox on http://%s:%s (%d catalogue cards, time x%g)",
        settings.host,
        settings.port,
        len(app.sandbox.catalogue),
        settings.time_scale,
    )
    uvicorn.Server(_config(app, host=settings.host, port=settings.port, log_level="info")).run()
