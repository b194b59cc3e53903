"""The audit trail: who did what, newest first, by batch and/or user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from distributor.access import audit
from distributor.api.deps import ID_MAX, Authorized, SessionDep
from distributor.constants import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, USER_NAME_MAX_CHARS

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[Authorized])


@router.get("")
def audit_trail(
    session: SessionDep,
    batch: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
    user: Annotated[str | None, Query(max_length=USER_NAME_MAX_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
    offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
) -> dict[str, Any]:
    """Audit entries, newest first; any user may read them (they hold no secret)."""
    found = audit.entries(session, batch_id=batch, actor=user, limit=limit, offset=offset)
    return {"items": [audit.entry_view(entry) for entry in found], "limit": limit, "offset": offset}
