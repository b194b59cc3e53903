"""Every batch route against every role: allowed, or refused with 403 and a clear message."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import AuditEntry, User
from distributor.pipeline.clock import utcnow
from distributor.pipeline.ready_rows import ready_row_ids
from tests.integration.access.access_helpers import BIG, upload

Clients = Callable[[str], httpx.Client]
ROLES = ("viewer", "operator", "approver", "admin")


def _audit(settings: Settings) -> list[tuple[str, str, int | None]]:
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.batch_id).order_by(AuditEntry.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_batches_rows_the_report_and_the_audit(
    client_for: Clients, role: str
) -> None:
    batch_id = upload(client_for("operator"), start="false").json()["id"]
    client = client_for(role)
    for path in (
        "/batches",
        f"/batches/{batch_id}",
        f"/batches/{batch_id}/rows",
        f"/batches/{batch_id}/approval",
        f"/batches/{batch_id}/report.csv",
        "/metrics",
        f"/audit?batch={batch_id}",
    ):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    ("role", "allowed"),
    [("viewer", False), ("operator", True), ("approver", True), ("admin", True)],
)
def test_only_an_operator_or_above_uploads_and_steers_a_batch(
    client_for: Clients, settings: Settings, role: str, allowed: bool
) -> None:
    client = client_for(role)
    answer = upload(client, start="false")
    if not allowed:
        assert answer.status_code == 403
        assert answer.json()["detail"] == (
            "viewer (viewer) may not upload: it needs the operator role or above"
        )
        batch_id = upload(client_for("operator"), start="false").json()["id"]
    else:
        assert answer.status_code == 201, answer.text
        batch_id = answer.json()["id"]
    before = _audit(settings)
    for action in ("start", "pause", "resume", "retry", "cancel"):
        answer = client.post(f"/batches/{batch_id}/{action}")
        assert answer.status_code == (200 if allowed else 403), (action, answer.text)
        if not allowed:
            assert f"may not {action}: it needs the operator role" in answer.json()["detail"]
    if not allowed:
        assert _audit(settings) == before
    else:
        actions = [action for actor, action, _ in _audit(settings) if actor == role]
        assert actions == ["upload", "start", "pause", "resume", "retry", "cancel"]


def test_a_request_without_a_known_enabled_token_is_refused_with_401(
    client_for: Clients, settings: Settings, base_url: str, tokens: dict[str, str]
) -> None:
    assert client_for("viewer").get("/batches").status_code == 200
    with session_scope(settings.database_url) as session:
        user = session.scalars(select(User).where(User.name == "viewer")).one()
        user.disabled_at = user.created_at
    assert client_for("viewer").get("/batches").status_code == 401
    with httpx.Client(base_url=base_url) as anonymous:
        wrong = {"Authorization": "Bearer not-a-token"}
        assert anonymous.get("/batches", headers=wrong).status_code == 401


def test_tokens_are_stored_only_as_their_sha256(settings: Settings, tokens: dict[str, str]) -> None:
    with session_scope(settings.database_url) as session:
        stored = {user.name: user.token_hash for user in session.scalars(select(User))}
        audit_text = " ".join(str(entry.details) for entry in session.scalars(select(AuditEntry)))
    for name, token in tokens.items():
        assert stored[name] == hashlib.sha256(token.encode()).hexdigest()
        assert token not in stored.values()
        assert token not in audit_text


def test_a_batch_over_the_threshold_waits_and_no_worker_touches_it(
    client_for: Clients, dispatched: list[int], settings: Settings
) -> None:
    answer = upload(client_for("operator"), BIG)
    assert answer.status_code == 201, answer.text
    batch_id = answer.json()["id"]
    assert answer.json()["state"] == "awaiting_approval"
    assert dispatched == []
    refused = client_for("operator").post(f"/batches/{batch_id}/start")
    assert refused.status_code == 409
    assert "awaiting approval" in refused.json()["detail"]
    with session_scope(settings.database_url) as session:
        assert ready_row_ids(session, batch_id=None, now=utcnow(), after_id=0, limit=10) == []


def test_the_uploader_cannot_approve_their_own_batch_another_approver_can(
    client_for: Clients, dispatched: list[int], settings: Settings
) -> None:
    batch_id = upload(client_for("approver"), BIG).json()["id"]
    own = client_for("approver").post(f"/batches/{batch_id}/approve")
    assert own.status_code == 403
    assert "another approver must" in own.json()["detail"]
    assert client_for("operator").post(f"/batches/{batch_id}/approve").status_code == 403
    assert _audit(settings)[-1][1] == "upload"
    summary = client_for("viewer").get(f"/batches/{batch_id}/approval").json()
    assert summary["uploaded_by"] == "approver"
    assert summary["counts"]["pending"] == 3
    approved = client_for("approver2").post(f"/batches/{batch_id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "running"
    assert dispatched == [batch_id]
    assert _audit(settings)[-1] == ("approver2", "approve", batch_id)


def test_a_rejected_batch_is_cancelled_with_its_reason_in_the_audit(
    client_for: Clients, settings: Settings
) -> None:
    batch_id = upload(client_for("operator"), BIG).json()["id"]
    answer = client_for("admin").post(f"/batches/{batch_id}/reject", json={"reason": "wrong file"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "cancelled"
    entries = client_for("viewer").get("/audit", params={"batch": batch_id}).json()["items"]
    assert [entry["action"] for entry in entries] == ["reject", "upload"]
    assert entries[0]["details"]["reason"] == "wrong file"
    assert (
        client_for("viewer").get("/audit", params={"user": "admin"}).json()["items"][0]["action"]
        == "reject"
    )


def test_an_action_that_fails_leaves_no_audit_entry(
    client_for: Clients, settings: Settings
) -> None:
    batch_id = upload(client_for("operator"), start="false").json()["id"]
    assert client_for("operator").post(f"/batches/{batch_id}/resume").status_code == 409
    assert client_for("operator").post(f"/batches/{batch_id}/approve").status_code == 403
    assert [action for _, action, batch in _audit(settings) if batch] == ["upload"]


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("operator", True)])
def test_only_an_operator_or_above_resends_or_reclaims(
    client_for: Clients, settings: Settings, role: str, allowed: bool
) -> None:
    """Refused: 403 naming the role, nothing audited. Allowed: the role check passes and the
    action's own rules answer (a pending row has no loaded card to resend: 409; an empty
    corrections file: 422; reclaim without the Centrapay settings it calls with: 503)."""
    batch_id = upload(client_for("operator"), start="false").json()["id"]
    row_id = client_for("operator").get(f"/batches/{batch_id}/rows").json()["items"][0]["id"]
    client = client_for(role)
    before = _audit(settings)
    resend = client.post(
        f"/batches/{batch_id}/rows/{row_id}/resend", json={"recipientAlias": "+64211231234"}
    )
    corrections = client.post(
        f"/batches/{batch_id}/resend", files={"file": ("fix.csv", b"line,recipientAlias\n")}
    )
    reclaim = client.post(f"/batches/{batch_id}/reclaim", json={})
    if not allowed:
        for answer, action in ((resend, "resend"), (corrections, "resend"), (reclaim, "reclaim")):
            assert answer.status_code == 403, answer.text
            assert f"may not {action}: it needs the operator role" in answer.json()["detail"]
        assert _audit(settings) == before
        return
    assert resend.status_code == 409, resend.text
    assert "never loaded" in resend.json()["detail"]
    assert (corrections.status_code, corrections.json()["detail"]) == (
        422,
        "the file has no correction",
    )
    assert reclaim.status_code == 503, reclaim.text  # past the role: the service's settings
    assert "CENTRAPAY_BASE_URL" in reclaim.json()["detail"]
