"""Constants and helpers of the sandbox tests: the test accounts, request builders, and a
small real HTTP receiver for webhooks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from centrapay_sandbox import SandboxHandle

DATA = Path(__file__).resolve().parents[2] / "data" / "sandbox"

DOC_KEY = "1234"
DOC_ACCOUNT = "Te2uDM7xhDLWGVJU3nzwnh"
TOKEN_KEY = "token-key"
TOKEN_ACCOUNT = "Jaim1Cu1Q55uooxSens6yk"
OTHER_KEY = "other-key"
OTHER_ACCOUNT = "OtherAccount0000000001"
BOB_PHONE = "+64221231234"
BOB_KEY = "bob-key"
NEVER_CLAIMS_PHONE = "+64221239999"
NEVER_CLAIMS_KEY = "never-key"
PAGE_SIZE = 3


def client_for(sandbox: SandboxHandle, key: str | None = DOC_KEY, **options: Any) -> httpx.Client:
    """An HTTP client of the sandbox sending ``key`` as X-Api-Key."""
    headers = {"x-api-key": key} if key is not None else {}
    return httpx.Client(base_url=sandbox.base_url, headers=headers, **options)


def load_body(card_number: str, *, pin: str = "1111", **extra: Any) -> dict[str, Any]:
    """A valid load request for the docs' account."""
    return {
        "accountId": DOC_ACCOUNT,
        "category": "giftcard",
        "type": "epay.nzd.main",
        "issuer": "ezipay",
        "externalId": card_number,
        "pin": pin,
        **extra,
    }


def load(client: httpx.Client, card_number: str, **extra: Any) -> dict[str, Any]:
    """Load a card into the docs' account; the asset."""
    response = client.post("/api/external-assets", json=load_body(card_number, **extra))
    assert response.status_code == 200, response.text
    return dict(response.json())


def send(
    client: httpx.Client, asset_id: str, alias: str = BOB_PHONE, **extra: Any
) -> httpx.Response:
    """POST a transfer of ``asset_id`` to ``alias`` (Bob by default)."""
    return client.post(
        "/api/asset-transfers", json={"assetId": asset_id, "recipientAlias": alias, **extra}
    )


def advance(control: httpx.Client, seconds: float) -> None:
    """Jump the sandbox's clock forward and apply what is due."""
    control.post("/_sandbox/clock/advance", json={"seconds": seconds}).raise_for_status()


def assert_rate_limited(response: httpx.Response) -> None:
    """The answer is the real API's 429: RATE_LIMIT_EXCEEDED, to be tried again in a second."""
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "statusCode": 429,
        "error": "Too Many Requests",
        "message": "RATE_LIMIT_EXCEEDED",
    }


def walk_pages(client: httpx.Client, path: str, **params: str) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following nextPageKey."""
    pages = []
    while True:
        answer = client.get(path, params=params).json()
        pages.append(answer["items"])
        if "nextPageKey" not in answer:
            return pages
        params["pageKey"] = answer["nextPageKey"]


class WebhookReceiver:
    """A real HTTP server on a loopback port that keeps every JSON body POSTed to it."""

    def __init__(self, *, fail: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                body = json.loads(self.rfile.read(length))
                with receiver.received:
                    receiver.bodies.append(body)
                    receiver.received.notify_all()
                self.send_response(500 if fail else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def statuses(self, transfer_id: str) -> list[str]:
        """The statuses POSTed for one transfer, in arrival order."""
        return [body["status"] for body in self.bodies if body["id"] == transfer_id]

    def wait_for(self, transfer_id: str, status: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The body POSTed when the transfer reached ``status``; fails after ``timeout``."""
        with self.received:
            found = self.received.wait_for(
                lambda: any(b["id"] == transfer_id and b["status"] == status for b in self.bodies),
                timeout,
            )
        assert found, f"no webhook for {status}; got {self.statuses(transfer_id)}"
        return next(b for b in self.bodies if b["id"] == transfer_id and b["status"] == status)
