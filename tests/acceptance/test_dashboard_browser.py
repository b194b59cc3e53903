"""The dashboard in a real browser: headless Chromium, driven over the DevTools protocol.

Chromium is a system package (``apt-get install -y chromium``); without it this test fails
rather than skips, so CI cannot pass without having looked at the page.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from websockets.sync.client import ClientConnection, connect

from distributor.access.actors import BOOTSTRAP
from distributor.api.app import create_app
from distributor.config import Settings
from distributor.constants import BatchState, Role
from distributor.db import session_scope
from distributor.models import Row
from distributor.operator_actions import add_user
from distributor.pipeline.clock import utcnow
from tests.conftest import TEST_API_TOKEN
from tests.integration.dashboard.dashboard_helpers import Spec, specs, store_batch
from tests.serving import serve_in_thread

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
STARTUP_TIMEOUT_SECONDS = 20.0
STEP_TIMEOUT_SECONDS = 15.0
SCREENSHOT = Path(__file__).resolve().parent.parent / "artifacts" / "dashboard.png"
APPROVAL_SCREENSHOT = SCREENSHOT.with_name("dashboard-approval.png")
ROWS_SCREENSHOT = SCREENSHOT.with_name("dashboard-rows.png")
AFTER_SEND_SCREENSHOT = SCREENSHOT.with_name("dashboard-resend-reclaim.png")
CARDS = "+64221231234,23403321042,1111,Hello Bob\n+64221231235,23403321043,1112,Hello Alice\n"


class DevTools:
    """A DevTools protocol session with one page: commands by id, events kept until asked for."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its result."""
        command_id = next(self._ids)
        self._socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == command_id:
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message["result"]
                return result
            self._events.append(message)

    def wait_for(self, event: str) -> dict[str, Any]:
        """The first unread ``event``, waiting for it if it has not come yet."""
        while True:
            for index, message in enumerate(self._events):
                if message.get("method") == event:
                    del self._events[index]
                    return message
            self._events.append(self._receive())

    def wait_for_response(self, url: str) -> dict[str, Any]:
        """The first unread ``Network.responseReceived`` for ``url``: its response."""
        while True:
            for index, message in enumerate(self._events):
                if (
                    message.get("method") == "Network.responseReceived"
                    and message["params"]["response"]["url"] == url
                ):
                    del self._events[index]
                    response: dict[str, Any] = message["params"]["response"]
                    return response
            self._events.append(self._receive())

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in answer, answer["exceptionDetails"]
        return answer["result"].get("value")

    def _receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self._socket.recv(timeout=STEP_TIMEOUT_SECONDS))
        return message


def _chromium() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "Chromium is not installed; install it with "
        "`apt-get update && apt-get install -y chromium` (CI does this in .ci/run)"
    )


@pytest.fixture
def devtools(tmp_path: Path) -> Iterator[DevTools]:
    """A headless Chromium of its own profile, and a DevTools session with its page."""
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = _devtools_port(profile / "DevToolsActivePort", process)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list").json()
        page = next(target for target in targets if target["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            yield DevTools(socket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STEP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _devtools_port(active_port: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not active_port.exists() or not active_port.read_text().strip():
        assert process.poll() is None, f"Chromium exited with {process.returncode}"
        assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
        time.sleep(0.05)
    return int(active_port.read_text().splitlines()[0])


def _open_window(devtools: DevTools) -> None:
    """Page and network events on, and a desktop window of 1280 x 1100."""
    devtools.call("Page.enable")
    devtools.call("Network.enable")
    devtools.call(
        "Emulation.setDeviceMetricsOverride",
        width=1280,
        height=1100,
        deviceScaleFactor=1,
        mobile=False,
    )


def _load(devtools: DevTools, url: str) -> None:
    devtools.call("Page.navigate", url=url)
    devtools.wait_for("Page.loadEventFired")


def _count(devtools: DevTools, state: str) -> int:
    text = devtools.evaluate(f"document.querySelector('[data-state={state}] b').textContent")
    return int(str(text).replace(",", ""))


def _click(devtools: DevTools, selector: str) -> None:
    """Scroll the element into view, press and release the mouse on its middle, as a person
    would (a click outside the viewport hits nothing)."""
    box = devtools.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    x, y = box
    for kind in ("mousePressed", "mouseReleased"):
        devtools.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def _log_in(devtools: DevTools, name: str, token: str) -> None:
    """Send basic credentials, the token as the password, with every request from now on."""
    login = base64.b64encode(f"{name}:{token}".encode()).decode()
    devtools.call("Network.setExtraHTTPHeaders", headers={"Authorization": f"Basic {login}"})


def _text(devtools: DevTools, selector: str) -> str:
    return str(devtools.evaluate(f"document.querySelector({json.dumps(selector)}).textContent"))


def _present(devtools: DevTools, selector: str) -> bool:
    return bool(devtools.evaluate(f"document.querySelector({json.dumps(selector)}) !== null"))


def _save_screenshot(devtools: DevTools, path: Path) -> None:
    """A PNG of the whole page as it is now, written to ``path``."""
    shot = devtools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def test_an_operator_cannot_approve_her_batch_a_second_user_approves_it_and_it_starts(
    settings: Settings, devtools: DevTools
) -> None:
    settings = settings.model_copy(update={"approval_required_above_rows": 0})
    with session_scope(settings.database_url) as session:
        olive = add_user(session, BOOTSTRAP, name="olive", role=Role.OPERATOR, now=utcnow())
        april = add_user(session, BOOTSTRAP, name="april", role=Role.APPROVER, now=utcnow())
    dispatched: list[int] = []
    app = create_app(settings, dispatch=dispatched.append)
    with serve_in_thread(app) as url:
        # The dashboard has no upload: olive uploads through the API with her token.
        answer = httpx.post(
            f"{url}/batches",
            headers={"Authorization": f"Bearer {olive}"},
            files={"file": ("december-rewards.csv", CARDS.encode(), "text/csv")},
            data={"start": "true"},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["state"] == "awaiting_approval"
        batch_id = answer.json()["id"]
        page = f"{url}/dashboard/batches/{batch_id}"
        _open_window(devtools)

        _log_in(devtools, "olive", olive)
        _load(devtools, page)
        assert devtools.wait_for_response(page)["status"] == 200
        assert _text(devtools, "#logged-in").split() == ["olive", "(operator)"]
        assert _text(devtools, ".state") == "awaiting_approval"
        assert not _present(devtools, "#approve")
        assert not _present(devtools, "form[action$='/approve']")
        # The page has no Approve form; she makes one with her page's form token and posts it.
        devtools.evaluate(
            "(() => { const form = document.createElement('form'); form.method = 'post';"
            f" form.action = '/dashboard/batches/{batch_id}/approve';"
            " const token = document.querySelector('input[name=csrf_token]').cloneNode();"
            " form.appendChild(token); document.body.appendChild(form); form.submit(); })()"
        )
        devtools.wait_for("Page.loadEventFired")
        assert devtools.wait_for_response(f"{page}/approve")["status"] == 403
        assert "olive (operator) may not approve" in _text(devtools, "body")
        assert dispatched == []

        _log_in(devtools, "april", april)
        _load(devtools, page)
        assert devtools.wait_for_response(page)["status"] == 200
        assert _text(devtools, "#logged-in").split() == ["april", "(approver)"]
        summary = " ".join(_text(devtools, "#approval").split())
        assert "uploaded by olive" in summary
        assert "Waiting for an approver other than olive" in summary
        assert _count(devtools, "pending") == 2
        assert _present(devtools, "#approve")

        _click(devtools, "#approve")
        devtools.wait_for("Page.loadEventFired")

        assert devtools.evaluate("location.pathname") == f"/dashboard/batches/{batch_id}"
        assert _text(devtools, ".state") == "running"
        assert "Approved by april" in _text(devtools, "#approval")
        assert not _present(devtools, "#approve")
        assert _text(devtools, "#logged-in").split() == ["april", "(approver)"]
        audit_rows = devtools.evaluate(
            "[...document.querySelectorAll('#audit tbody tr')].map("
            "r => [r.cells[1].textContent.trim(), r.cells[2].textContent.trim()])"
        )
        assert audit_rows == [["april (approver)", "approve"], ["olive (operator)", "upload"]]
        assert dispatched == [batch_id]
        _save_screenshot(devtools, APPROVAL_SCREENSHOT)


def test_an_operator_retries_one_error_group_from_the_batch_page(
    settings: Settings, devtools: DevTools
) -> None:
    failed = [
        *[Spec(state="failed", error_code="INSUFFICIENT_WALLET_BALANCE") for _ in range(3)],
        Spec(state="failed", error_code="UNKNOWN_ASSET", error_detail="<b>no such card</b>"),
    ]
    batch_id = store_batch(
        settings,
        [*specs(sent=12, pending=2, invalid=1), *failed],
        state=BatchState.DONE,
        name="november-rewards.csv",
        started_at=datetime.now(UTC) - timedelta(seconds=90),
    )
    app = create_app(settings, dispatch=lambda _batch_id: None)
    with serve_in_thread(app) as url:
        _open_window(devtools)
        _log_in(devtools, "operator", TEST_API_TOKEN)
        _load(devtools, f"{url}/dashboard/batches/{batch_id}")
        assert (_count(devtools, "failed"), _count(devtools, "pending")) == (4, 2)
        assert devtools.evaluate("document.querySelectorAll('#failed-groups button').length") == 2

        _click(devtools, "#failed-groups tbody tr:first-child button")
        devtools.wait_for("Page.loadEventFired")

        assert devtools.evaluate("location.pathname") == f"/dashboard/batches/{batch_id}"
        assert (_count(devtools, "failed"), _count(devtools, "pending")) == (1, 5)
        notice = devtools.evaluate("document.querySelector('.notice').textContent")
        assert "3 rows put back to work" in notice
        assert devtools.evaluate("document.querySelector('.state').textContent") == "running"
        _save_screenshot(devtools, SCREENSHOT)


def test_an_operator_reads_the_run_chart_the_invalid_rows_and_filters_the_rows_table(
    settings: Settings, devtools: DevTools
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=120)
    invalid = [
        Spec(
            state="invalid",
            error_code="INVALID_RECIPIENT",
            error_detail="recipientAlias: a landline; the giftcard is sent by SMS",
        ),
        Spec(
            state="duplicate",
            error_code="DUPLICATE_IN_FILE",
            error_detail="cardNumber: the same card as line 1",
        ),
    ]
    failed = [
        Spec(state="failed", error_code="RATE_LIMITED"),
        Spec(state="failed", error_code="SERVER_ERROR"),
        Spec(state="failed", error_code="TIMEOUT"),
    ]
    batch_id = store_batch(
        settings,
        [*specs(sent=30), *failed, *invalid, *specs(pending=3)],
        state=BatchState.RUNNING,
        name="rows-and-chart.csv",
        started_at=started,
    )
    with session_scope(settings.database_url) as session:
        for line in range(1, 34):
            at = started + timedelta(seconds=2 * line)
            session.execute(
                update(Row)
                .where(Row.batch_id == batch_id, Row.line_no == line)
                .values(sent_at=at if line <= 30 else None, updated_at=at)
            )
    app = create_app(settings, dispatch=lambda _batch_id: None)
    with serve_in_thread(app) as url:
        page = f"{url}/dashboard/batches/{batch_id}"
        _open_window(devtools)
        _log_in(devtools, "operator", TEST_API_TOKEN)
        _load(devtools, page)
        assert devtools.wait_for_response(page)["status"] == 200

        bars = devtools.evaluate(
            "[...document.querySelectorAll('#rate-chart rect.rate')]"
            ".map(r => r.getBoundingClientRect().height)"
        )
        assert len(bars) > 10
        assert all(height > 0 for height in bars)
        answers = devtools.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#answer-totals [data-answer]')]"
            ".map(s => [s.dataset.answer, s.querySelector('b').textContent]))"
        )
        assert answers == {"2xx": "30", "429": "1", "5xx": "1", "timeout": "1", "other": "0"}

        problems = devtools.evaluate(
            "[...document.querySelectorAll('#invalid-rows tbody tr')]"
            ".map(r => [...r.cells].slice(0, 4).map(c => c.textContent.trim()))"
        )
        assert problems == [
            ["34", "invalid", "recipientAlias", "a landline; the giftcard is sent by SMS"],
            ["35", "duplicate", "cardNumber", "the same card as line 1"],
        ]
        assert devtools.evaluate("document.querySelectorAll('#rows-table tbody tr').length") == 38

        devtools.evaluate("document.querySelector('#rows-filter select').value = 'failed'")
        _click(devtools, "#rows-filter button")
        devtools.wait_for("Page.loadEventFired")
        assert devtools.evaluate("location.search") == "?state=failed&error_code=&line="
        shown = devtools.evaluate(
            "[...document.querySelectorAll('#rows-table tbody tr')]"
            ".map(r => [r.cells[0].textContent, r.cells[5].textContent])"
        )
        assert shown == [["31", "RATE_LIMITED"], ["32", "SERVER_ERROR"], ["33", "TIMEOUT"]]
        assert "+6422" not in _text(devtools, "#rows-table")

        _load(devtools, f"{page}?line=35")
        assert _text(devtools, "#rows-table tr.found td") == "35"
        _save_screenshot(devtools, ROWS_SCREENSHOT)


def test_an_operator_resends_a_card_from_the_rows_table_and_finds_the_reclaim_controls(
    settings: Settings, devtools: DevTools
) -> None:
    after_send = [
        Spec(state="sent", asset_id="asset-1", transfer_status="returned"),
        Spec(state="failed", asset_id="asset-2", error_code="BAD_REQUEST"),
        Spec(state="sent", asset_id="asset-3", transfer_status="sent"),
        Spec(state="sent", asset_id="asset-4", transfer_status="created"),
        Spec(state="sent", asset_id="asset-5", transfer_status="claimed"),
    ]
    batch_id = store_batch(
        settings,
        after_send,
        state=BatchState.DONE,
        name="january-rewards.csv",
        started_at=datetime.now(UTC) - timedelta(seconds=60),
    )
    dispatched: list[int] = []
    app = create_app(settings, dispatch=dispatched.append)
    with serve_in_thread(app) as url:
        page = f"{url}/dashboard/batches/{batch_id}"
        _open_window(devtools)
        _log_in(devtools, "operator", TEST_API_TOKEN)
        _load(devtools, page)
        assert devtools.evaluate("document.querySelectorAll('#rows-table form.resend').length") == 2
        assert (
            devtools.evaluate("document.querySelectorAll('#rows-table form.reclaim-row').length")
            == 2
        )
        assert "2 sent cards not claimed yet" in _text(devtools, "#reclaim")

        first_resend = "#line-1 form.resend"
        resend_url = devtools.evaluate(f"document.querySelector('{first_resend}').action")
        devtools.evaluate(
            f"document.querySelector('{first_resend} [name=recipient]').value = '12345'"
        )
        _click(devtools, f"{first_resend} button")
        devtools.wait_for("Page.loadEventFired")
        assert devtools.wait_for_response(resend_url)["status"] == 422
        assert _text(devtools, ".problem") == "recipientAlias: not a valid NZ phone number"

        devtools.evaluate(
            f"document.querySelector('{first_resend} [name=recipient]').value = '022 111 9876'"
        )
        _click(devtools, f"{first_resend} button")
        devtools.wait_for("Page.loadEventFired")
        assert devtools.evaluate("location.search") == "?resent=1"
        assert "1 row resent" in _text(devtools, "#notice")
        assert _text(devtools, "#line-1 td:nth-child(4)") == "loaded"
        assert not _present(devtools, first_resend)
        assert dispatched == [batch_id]

        _click(devtools, "#reclaim summary")
        assert devtools.evaluate("document.querySelector('#reclaim').open") is True
        _save_screenshot(devtools, AFTER_SEND_SCREENSHOT)
