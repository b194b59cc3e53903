"""The dashboard by role: only the buttons a role may use, refusals with 403, the audit."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from distributor.api.deps import form_token
from distributor.config import Settings
from distributor.constants import BatchState
from distributor.db import session_scope
from distributor.models import AuditEntry, Batch, Row
from tests.integration.access.access_helpers import BIG, upload
from tests.integration.dashboard.dashboard_helpers import FORM_TOKEN, Spec, specs, store_batch

Clients = Callable[[str], httpx.Client]
FORM_ACTION = re.compile(r'<form method="post" action="/dashboard/batches/\d+/(?:rows/\d+/)?(\w+)"')
AUDIT_ROW = re.compile(
    r"<tr>\s*<td>[^<]*</td>\s*<td>([^<]+?) <span class=\"muted\">\((\w+)\)</span></td>\s*"
    r"<td><code>([\w.]+)</code></td>"
)
STEERING = {"start", "pause", "resume", "cancel", "retry"}
DECIDING = {"approve", "reject"}
AFTER_SEND = {"resend", "reclaim"}
CORRECTED = "+64221119876"


@pytest.fixture
def browser_for(base_url: str, tokens: dict[str, str]) -> Iterator[Callable[[str], httpx.Client]]:
    """A client logged in to the dashboard as the named user: basic auth, token as password."""
    clients: list[httpx.Client] = []

    def make(name: str) -> httpx.Client:
        client = httpx.Client(base_url=base_url, auth=(name, tokens[name]))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _page(browser: httpx.Client, batch_id: int) -> str:
    answer = browser.get(f"/dashboard/batches/{batch_id}")
    assert answer.status_code == 200, answer.text
    return answer.text


def _buttons(html: str) -> set[str]:
    return set(FORM_ACTION.findall(html))


def _audit_count(settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def _state(settings: Settings, batch_id: int) -> str:
    with session_scope(settings.database_url) as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch.state


def _steerable_batches(settings: Settings) -> dict[str, int]:
    """A queued, a running, a paused and a done batch with failed rows: between them every
    steering button (start, pause, resume, cancel, retry) is offered to a role that may use it."""
    return {
        "queued": store_batch(settings, specs(pending=2), state=BatchState.QUEUED, batch_index=1),
        "running": store_batch(
            settings, specs(sent=1, pending=1), state=BatchState.RUNNING, batch_index=4
        ),
        "paused": store_batch(
            settings, specs(pending=2), state=BatchState.PAUSED, batch_index=2, pause_reason="x"
        ),
        "done": store_batch(
            settings, specs(sent=1, failed=2), state=BatchState.DONE, batch_index=3
        ),
    }


def _after_send_batch(settings: Settings) -> tuple[int, int]:
    """A done batch with a returned card (to resend) and an unclaimed transfer (to
    reclaim); its id and the returned row's."""
    batch_id = store_batch(
        settings,
        [
            Spec(state="sent", asset_id="asset-1", transfer_status="returned"),
            Spec(state="sent", asset_id="asset-2", transfer_status="sent"),
        ],
        state=BatchState.DONE,
        batch_index=5,
    )
    with session_scope(settings.database_url) as session:
        returned = session.scalar(
            select(Row.id).where(Row.batch_id == batch_id, Row.transfer_status == "returned")
        )
    assert returned is not None
    return batch_id, returned


def test_a_viewer_sees_no_start_pause_resume_cancel_or_retry_button_an_operator_does(
    settings: Settings, browser_for: Clients
) -> None:
    shown: dict[str, set[str]] = {"viewer": set(), "operator": set()}
    made = _steerable_batches(settings)
    for batch_id in made.values():
        for role in shown:
            html = _page(browser_for(role), batch_id)
            assert f'{role} <span class="role">({role})</span>' in html
            shown[role] |= _buttons(html)
    assert shown["viewer"] == set()
    assert shown["operator"] == STEERING
    assert "report.csv" in _page(browser_for("viewer"), made["done"])


def test_a_viewer_sees_no_resend_or_reclaim_control_an_operator_does(
    settings: Settings, browser_for: Clients
) -> None:
    batch_id, _returned = _after_send_batch(settings)
    viewer_page = _page(browser_for("viewer"), batch_id)
    assert _buttons(viewer_page) == set()
    assert 'id="reclaim"' not in viewer_page
    operator_page = _page(browser_for("operator"), batch_id)
    assert _buttons(operator_page) == AFTER_SEND
    assert 'id="reclaim"' in operator_page


def test_an_operator_sees_no_approve_or_reject_button_another_approver_does(
    browser_for: Clients, client_for: Clients
) -> None:
    batch_id = upload(client_for("approver"), BIG).json()["id"]
    operator_page = _page(browser_for("operator"), batch_id)
    assert 'id="approve"' not in operator_page
    assert not _buttons(operator_page) & DECIDING
    uploader_page = _page(browser_for("approver"), batch_id)
    assert 'id="approve"' not in uploader_page, "the uploader may not approve their own batch"
    assert not _buttons(uploader_page) & DECIDING
    approver_page = _page(browser_for("approver2"), batch_id)
    assert 'id="approve"' in approver_page
    assert _buttons(approver_page) >= DECIDING
    assert "uploaded by approver" in approver_page


@pytest.mark.parametrize(
    ("role", "action", "form"),
    [
        ("viewer", "start", {}),
        ("viewer", "pause", {}),
        ("viewer", "resume", {}),
        ("viewer", "cancel", {}),
        ("viewer", "retry", {"error_code": "UNKNOWN_ASSET"}),
        ("viewer", "approve", {}),
        ("viewer", "reject", {"reason": "no"}),
        ("viewer", "resend", {"recipient": CORRECTED}),
        ("viewer", "reclaim", {"older_than_days": "0"}),
        ("operator", "approve", {}),
        ("operator", "reject", {"reason": "no"}),
    ],
)
def test_a_dashboard_form_post_by_a_role_that_may_not_is_refused_403_with_no_audit_entry(
    settings: Settings,
    browser_for: Clients,
    client_for: Clients,
    tokens: dict[str, str],
    role: str,
    action: str,
    form: dict[str, str],
) -> None:
    path = action
    if action in DECIDING:
        batch_id = upload(client_for("approver"), BIG).json()["id"]
    elif action in AFTER_SEND:
        batch_id, returned = _after_send_batch(settings)
        path = f"rows/{returned}/resend" if action == "resend" else action
    else:
        batch_id = _steerable_batches(settings)[
            {"start": "queued", "pause": "queued", "resume": "paused"}.get(action, "done")
        ]
    browser = browser_for(role)
    assert action not in _buttons(_page(browser, batch_id))
    # A viewer's page has no form, so no form token: make a valid one, as the page would,
    # so that what refuses the post is the role, not the missing token.
    csrf = form_token(settings, tokens[role], now=time.time())
    state, entries = _state(settings, batch_id), _audit_count(settings)
    answer = browser.post(
        f"/dashboard/batches/{batch_id}/{path}", data={"csrf_token": csrf, **form}
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"] == (
        f"{role} ({role}) may not {action}: it needs the "
        f"{'approver' if action in DECIDING else 'operator'} role or above"
    )
    assert _audit_count(settings) == entries
    assert _state(settings, batch_id) == state


def test_the_batch_page_audit_section_lists_each_action_with_who_and_their_role(
    browser_for: Clients, client_for: Clients, dispatched: list[int]
) -> None:
    batch_id = upload(client_for("operator"), BIG).json()["id"]
    approver = browser_for("approver")
    operator = browser_for("operator")
    for browser, action in ((approver, "approve"), (operator, "pause"), (operator, "cancel")):
        csrf = FORM_TOKEN.search(_page(browser, batch_id))
        assert csrf is not None
        answer = browser.post(
            f"/dashboard/batches/{batch_id}/{action}", data={"csrf_token": csrf.group(1)}
        )
        assert answer.status_code == 303, (action, answer.text)
    assert dispatched == [batch_id]
    rows = AUDIT_ROW.findall(_page(browser_for("viewer"), batch_id))
    assert rows == [
        ("operator", "operator", "cancel"),
        ("operator", "operator", "pause"),
        ("approver", "approver", "approve"),
        ("operator", "operator", "upload"),
    ]
