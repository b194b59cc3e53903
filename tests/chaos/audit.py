"""The verdict of a run, from Postgres, the sandbox's ledger, its request log and its API
(the transfers and assets it holds), and the service logs.

Exactly once is judged where the money is: the sandbox's ledger counts loads and transfers
per card number, whatever the rows say.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from distributor.config import Settings
from distributor.constants import IN_FLIGHT_STATES, RowState
from distributor.db import session_scope
from distributor.models import Row
from distributor.vault import vault_from_settings
from tests.chaos.batch import with_db
from tests.chaos.config import SANDBOX_ACCOUNT, SANDBOX_KEY

SUSPECT_CODES = ("ASSET_ALREADY_TRANSFERRED", "DUPLICATE_ASSET")
"""Failure codes that mean the pipeline itself sent a card a second time (the sandbox
refused it): not a duplicate at Centrapay, but a second attempt that should not happen."""


def _api_pages(client: httpx.Client, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
    page_key: str | None = None
    while True:
        query = dict(params, pageKey=page_key) if page_key else params
        answer = client.get(path, params=query)
        answer.raise_for_status()
        body = answer.json()
        yield from body.get("items", [])
        page_key = body.get("nextPageKey")
        if not page_key:
            return


def sandbox_holdings(base_url: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """What Centrapay holds, read through its API (faults must be off): our transfers'
    ids by asset id, and our account's active assets by card number."""
    headers = {"X-Api-Key": SANDBOX_KEY}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        transfers: dict[str, list[str]] = {}
        for item in _api_pages(
            client, "/api/asset-transfers", {"senderAccountId": SANDBOX_ACCOUNT}
        ):
            transfers.setdefault(str(item.get("assetId")), []).append(str(item["id"]))
        assets = {
            str(item.get("externalId")): str(item["id"])
            for item in _api_pages(client, f"/api/accounts/{SANDBOX_ACCOUNT}/assets", {})
            if item.get("externalId")
        }
    return transfers, assets


@dataclass(frozen=True, kw_only=True)
class RowRecord:
    """A row as the audit needs it, card number in clear (test cards only)."""

    id: int
    line_no: int
    card: str
    state: str
    error_code: str | None
    retryable: bool
    asset_id: str | None
    transfer_id: str | None
    load_attempts: int
    transfer_attempts: int
    lease_until: str | None
    not_before: str | None
    enqueued_at: str | None
    updated_at: str | None


def read_rows(settings: Settings, batch_id: int) -> list[RowRecord]:
    """Every row of the batch, card numbers decrypted."""
    vault = vault_from_settings(settings)

    def read() -> list[RowRecord]:
        with session_scope(settings.database_url) as session:
            rows = session.scalars(select(Row).where(Row.batch_id == batch_id).order_by(Row.id))
            return [
                RowRecord(
                    id=row.id,
                    line_no=row.line_no,
                    card=vault.decrypt(row.card_number_enc or b""),
                    state=row.state,
                    error_code=row.error_code,
                    retryable=row.retryable,
                    asset_id=row.asset_id,
                    transfer_id=row.transfer_id,
                    load_attempts=row.load_attempts,
                    transfer_attempts=row.transfer_attempts,
                    lease_until=_iso(row.lease_until),
                    not_before=_iso(row.not_before),
                    enqueued_at=_iso(row.enqueued_at),
                    updated_at=_iso(row.updated_at),
                )
                for row in rows
            ]

    return with_db(read)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def row_history(row_id: int, logs: Sequence[Path]) -> list[str]:
    """Every line the workers logged about row ``row_id``, log by log."""
    pattern = re.compile(rf"\brow {row_id}\b|'row_id': {row_id}\b")
    lines: list[str] = []
    for path in logs:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if pattern.search(line):
                    lines.append(f"{path.name}: {line.strip()}")
    return lines


LOG_SIGNS = {
    "tracebacks": "Traceback (most recent call last)",
    "taskErrors": "raised unexpected",
    "brokerConnectionLost": "Connection to broker lost",
    "brokerCannotConnect": "Cannot connect to redis",
    "leaseLost": "lease lost during",
    "operationalErrors": "OperationalError",
}


def log_signs(logs: Sequence[Path]) -> dict[str, dict[str, int]]:
    """How often each sign of trouble appears in each service log (zeros left out)."""
    found: dict[str, dict[str, int]] = {}
    for path in logs:
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        counts = {name: text.count(sign) for name, sign in LOG_SIGNS.items()}
        counts = {name: count for name, count in counts.items() if count}
        if counts:
            found[path.name] = counts
    return found


def fault_counts(requests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Faults the sandbox injected, by kind and by call, from its request log."""
    by_kind = Counter(str(r["fault"]) for r in requests if r["fault"])
    by_call: dict[str, Counter[str]] = {}
    for r in requests:
        if r["fault"]:
            call = f"{r['method']} /api/{r['path'].split('/')[2]}"
            by_call.setdefault(call, Counter())[str(r["fault"])] += 1
    statuses = Counter(str(r["status"]) for r in requests)
    return {
        "requests": len(requests),
        "faults": dict(sorted(by_kind.items())),
        "faultsTotal": sum(by_kind.values()),
        "faultsByCall": {call: dict(sorted(c.items())) for call, c in sorted(by_call.items())},
        "requestsByStatus": dict(sorted(statuses.items())),
    }


def audit(
    rows: Sequence[RowRecord],
    *,
    ledger: dict[str, dict[str, int]],
    transfers_by_asset: dict[str, list[str]],
    assets_by_card: dict[str, str],
    logs: Sequence[Path],
) -> dict[str, Any]:
    """The verdict: duplicates, lost rows, failed rows without a code, and the rest."""
    empty = {"loads": 0, "repeatLoads": 0, "transfers": 0}
    per_card = {row.card: ledger.get(row.card, empty) for row in rows}
    duplicates = [
        {"card": card, **counts}
        for card, counts in per_card.items()
        if counts["loads"] > 1 or counts["transfers"] > 1
    ]
    unsettled = [row for row in rows if row.state not in (RowState.SENT, RowState.FAILED)]
    sent = [row for row in rows if row.state == RowState.SENT]
    sent_not_transferred = [row for row in sent if per_card[row.card]["transfers"] == 0]
    sent_wrong_transfer = [
        row for row in sent if row.transfer_id not in transfers_by_asset.get(row.asset_id or "", [])
    ]
    failed = [row for row in rows if row.state == RowState.FAILED]
    failed_without_code = [row for row in failed if not row.error_code]
    failed_transferred = [row for row in failed if per_card[row.card]["transfers"] > 0]
    failed_loaded_unknown = [
        row
        for row in failed
        if row.asset_id is None and per_card[row.card]["loads"] > 0 and row.card in assets_by_card
    ]
    suspect = [row for row in failed if row.error_code in SUSPECT_CODES]

    def detail(row: RowRecord) -> dict[str, Any]:
        enqueued_after_lease = bool(
            row.state in IN_FLIGHT_STATES
            and row.enqueued_at
            and row.lease_until
            and row.enqueued_at >= row.lease_until
        )
        return {
            **asdict(row),
            "enqueuedAfterLeaseRanOut": enqueued_after_lease,
            "ledger": per_card[row.card],
            "history": row_history(row.id, logs),
        }

    lost = [*unsettled, *sent_not_transferred, *sent_wrong_transfer]
    # A row's final state must say what the sandbox holds: a sent row, its transfer; a row
    # not sent, no transfer at all.
    not_sent_but_transferred = [
        row for row in rows if row.state != RowState.SENT and per_card[row.card]["transfers"] > 0
    ]
    disagreeing = {
        row.id for row in [*sent_not_transferred, *sent_wrong_transfer, *not_sent_but_transferred]
    }
    return {
        "rowsByState": dict(sorted(Counter(row.state for row in rows).items())),
        "failedByCode": dict(sorted(Counter(str(row.error_code) for row in failed).items())),
        "failedWithoutCode": len(failed_without_code),
        "ledger": {
            "cardsByLoads": _histogram(c["loads"] for c in per_card.values()),
            "cardsByTransfers": _histogram(c["transfers"] for c in per_card.values()),
            "repeatLoads": sum(c["repeatLoads"] for c in per_card.values()),
        },
        "duplicates": {"count": len(duplicates), "cards": duplicates},
        "disagreesWithSandbox": {
            "count": len(disagreeing),
            "sentWithoutItsTransfer": len(
                {r.id for r in [*sent_not_transferred, *sent_wrong_transfer]}
            ),
            "notSentButTransferred": [detail(row) for row in not_sent_but_transferred],
        },
        "lost": {
            "count": len({row.id for row in lost}),
            "notSentOrFailed": [detail(row) for row in unsettled],
            "sentButNoTransferAtCentrapay": [detail(row) for row in sent_not_transferred],
            "sentButTransferIdNotThisAssets": [detail(row) for row in sent_wrong_transfer],
        },
        "notes": {
            "failedButTransferredAtCentrapay": [detail(row) for row in failed_transferred],
            "failedRowsWhoseCardIsLoadedInOurAccount": len(failed_loaded_unknown),
            "failedWithCodeOfASecondSend": [detail(row) for row in suspect],
            "rowsWithoutLedgerLoadButSent": sum(
                1 for row in sent if per_card[row.card]["loads"] == 0
            ),
        },
    }


def _histogram(values: Iterator[int] | Sequence[int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(values).items())}
