"""The audit trail: who did what, when, on which batch, with counts.

``record`` is called in the transaction of the action's effect, after the effect: an
action that fails rolls its entry back with it. Never pass a secret or a recipient in
``details``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.access.actors import Action, Actor
from distributor.models import AuditEntry


def record(
    session: Session,
    *,
    actor: Actor,
    action: Action,
    now: datetime,
    batch_id: int | None = None,
    subject: str | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    """Add one entry to the audit trail, in the caller's transaction."""
    session.add(
        AuditEntry(
            at=now,
            actor=actor.name,
            actor_role=actor.role,
            action=action,
            batch_id=batch_id,
            subject=subject,
            details=dict(details or {}),
        )
    )
    session.flush()


def entries(
    session: Session,
    *,
    batch_id: int | None = None,
    actor: str | None = None,
    limit: int,
    offset: int = 0,
) -> Sequence[AuditEntry]:
    """Entries, newest first, of one batch and/or one user."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    if batch_id is not None:
        query = query.where(AuditEntry.batch_id == batch_id)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    return session.scalars(query).all()


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the API shows it."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "user": entry.actor,
        "role": entry.actor_role,
        "action": entry.action,
        "batch_id": entry.batch_id,
        "subject": entry.subject,
        "details": entry.details,
    }
