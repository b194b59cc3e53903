"""Batches with rows in chosen states, written straight to the database, and page helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.pipeline.clock import utcnow
from distributor.vault import vault_from_settings
from tests.factories import make_batch, make_row

FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True, kw_only=True)
class Spec:
    """One row to store: its state, for a failed row its error, for a sent row the status
    of its transfer (the row then has a transfer id, sent a minute ago)."""

    state: str
    error_code: str | None = None
    error_detail: str | None = None
    message: str = "Hello"
    asset_id: str | None = None
    transfer_status: str | None = None
    ambiguous: bool = False


def card_for(batch_index: int, line: int) -> str:
    """An 11-digit card number, distinct for each batch and line."""
    return f"9{batch_index:03d}{line:07d}"


def store_batch(
    settings: Settings,
    specs: list[Spec],
    *,
    state: str = BatchState.RUNNING,
    name: str = "cards.csv",
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    pause_reason: str | None = None,
    batch_index: int = 0,
) -> int:
    """A batch holding one row per spec, in file order; its id."""
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state=state, name=name)
        batch.started_at = started_at
        batch.finished_at = finished_at
        batch.pause_reason = pause_reason
        for line, spec in enumerate(specs, start=1):
            row = make_row(
                session,
                batch=batch,
                vault=vault,
                card_number=card_for(batch_index, line),
                pin=f"{line:04d}",
                recipient=f"+6422{batch_index:03d}{line:04d}",
                state=spec.state,
                line_no=line,
            )
            row.error_code = spec.error_code
            row.error_detail = spec.error_detail
            row.message = spec.message
            row.asset_id = spec.asset_id
            row.ambiguous = spec.ambiguous
            if spec.transfer_status is not None:
                row.transfer_id = f"T-{batch_index}-{line}"
                row.transfer_status = spec.transfer_status
                row.sent_at = utcnow() - timedelta(minutes=1)
            if spec.state in (RowState.LOADED, RowState.SENT):
                row.pin_enc = None
        batch.total_rows = len(specs)
        return batch.id


def specs(**counts: int) -> list[Spec]:
    """``counts`` rows in each named state (failed rows get the code ``UNKNOWN_ASSET``)."""
    made: list[Spec] = []
    for state, count in counts.items():
        code = "UNKNOWN_ASSET" if state == RowState.FAILED else None
        made += [Spec(state=state, error_code=code) for _ in range(count)]
    return made


def form_token_of(page: httpx.Response) -> str:
    """The form token a dashboard page hands out."""
    found = FORM_TOKEN.search(page.text)
    assert found is not None, "the page has no form"
    return found.group(1)
