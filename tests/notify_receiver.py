"""A real HTTP server on a loopback port that takes completion notifications, for tests.

It answers each POST with the next status of a script (then 200), and keeps every
request's headers and exact body.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True, kw_only=True)
class Received:
    """One POST as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    """What the receiver answered."""


@dataclass
class Receiver:
    """What the server answers and what it got."""

    url: str
    statuses: list[int] = field(default_factory=list)
    """Answers to give, in order; once used up, 200."""
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, *, timeout: float = 30.0) -> list[Received]:
        """Block until ``count`` requests arrived; all of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{count} notifications expected, got {len(self.received)}")

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        with self.lock:
            return [one for one in self.received if 200 <= one.status < 300]


@contextmanager
def running_receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 until the block ends."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.received.append(
                    Received(path=self.path, headers=dict(self.headers), body=body, status=status)
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads ``received``."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_port}/hooks/batches")
    receiver.statuses.extend(statuses or [])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
