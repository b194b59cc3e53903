"""Driving one row through ``advance_row`` against a real sandbox, and reading what it cost."""

from __future__ import annotations

import re
import time
from collections import Counter

import httpx
from sqlalchemy import update

from centrapay_sandbox.lifecycle import CLAIMED_AFTER_SECONDS
from distributor.centrapay.client import CentrapayClient, Loaded, TransferOrder
from distributor.config import Settings
from distributor.constants import UNSETTLED_STATES
from distributor.db import session_scope
from distributor.models import Batch, Row
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.steps import advance_row
from distributor.vault import vault_from_settings
from tests.factories import load_row, make_batch, make_row

SETTLE_SECONDS = 15.0
WAIT_SECONDS = 0.05
REQUEST_LOG_LIMIT = 1000
_ID = re.compile(r"/(accounts|assets|asset-transfers)/[^/]+")
_TEMPLATE = r"/\1/{id}"


def stored_row(settings: Settings, card: str, *, state: str = "pending") -> int:
    """A row of a new running batch holding ``card``."""
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        return make_row(
            session, batch=batch, vault=vault_from_settings(settings), card_number=card, state=state
        ).id


def run_to_rest(ctx: PipelineContext, row_id: int) -> None:
    """Advance the row until it is settled (sent or failed), waiting out its backoffs."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        delay = advance_row(ctx, row_id)
        if read_row_state(ctx, row_id) not in UNSETTLED_STATES:
            return
        time.sleep(min(delay or WAIT_SECONDS, WAIT_SECONDS))
    raise AssertionError(f"row {row_id} did not settle")


def read_row_state(ctx: PipelineContext, row_id: int) -> str:
    """The row's state as stored."""
    with session_scope(ctx.database_url) as session:
        return load_row(session, row_id).state


def set_row(settings: Settings, row_id: int, **values: object) -> None:
    """Write ``values`` to the row, as an earlier attempt left it."""
    with session_scope(settings.database_url) as session:
        session.execute(update(Row).where(Row.id == row_id).values(**values))


def read_row(settings: Settings, row_id: int) -> Row:
    """The row as stored."""
    with session_scope(settings.database_url) as session:
        return load_row(session, row_id)


def read_batch(settings: Settings, batch_id: int) -> Batch:
    """The batch as stored."""
    with session_scope(settings.database_url) as session:
        return session.get_one(Batch, batch_id)


def api_calls(control: httpx.Client) -> list[str]:
    """Every /api request the sandbox received, by when it arrived, as ``METHOD /path/{id}``.

    The log is written as answers end: a timed-out call's entry comes after the lookup
    that followed it, so it is put back in the order the requests came in.
    """
    items = control.get("/ledger/requests", params={"limit": REQUEST_LOG_LIMIT}).json()["items"]
    items.sort(key=lambda item: item["at"])
    return [f"{item['method']} {_ID.sub(_TEMPLATE, item['path'])}" for item in items]


def calls_by_endpoint(control: httpx.Client) -> Counter[str]:
    """How many /api requests went to each endpoint."""
    return Counter(api_calls(control))


def plan_fault(control: httpx.Client, method: str, path: str, fault: str, count: int = 1) -> None:
    """Script the next ``count`` requests of ``method`` under ``path`` to meet ``fault``."""
    answer = control.post(
        "/faults", json={"method": method, "path": path, "fault": fault, "count": count}
    )
    assert answer.status_code == 200, answer.text


def card_ledger(control: httpx.Client, card: str) -> dict[str, int]:
    """The sandbox's load and transfer counts for one card."""
    return dict(control.get(f"/ledger/cards/{card}").json())


def sandbox_transfer(sandbox_url: str, api_key: str, transfer_id: str) -> dict[str, object]:
    """A transfer as the sandbox shows it to its sender."""
    answer = httpx.get(
        f"{sandbox_url}/api/asset-transfers/{transfer_id}", headers={"X-Api-Key": api_key}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


ORDER = TransferOrder(
    recipient_alias="+64221231234",
    message=None,
    sender_name=None,
    description=None,
    notify_url=None,
)
"""A transfer to the recipient of ``stored_row``'s rows."""


def load_out_of_band(client: CentrapayClient, card: str, *, transfer: bool = False) -> Loaded:
    """Load ``card`` (and transfer it, with ``transfer``) straight through the client, as an
    earlier attempt whose answer the row never saw."""
    return client.load_giftcard(
        asset_type="epay.nzd.test",
        issuer="ezipay",
        card_number=card,
        pin="1234",
        description=None,
        transfer=ORDER if transfer else None,
    )


def claimed_by_recipient(control: httpx.Client) -> None:
    """Run the sandbox's clock past the claim of every transfer made so far: each card is
    its recipient's, no longer in our account."""
    answer = control.post("/clock/advance", json={"seconds": CLAIMED_AFTER_SECONDS + 1})
    assert answer.status_code == 200, answer.text
