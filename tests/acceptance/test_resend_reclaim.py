"""After the send, with real workers and the sandbox: a card goes to a corrected recipient
in a new transfer (never a new load), and an unclaimed transfer is taken back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import select

from centrapay_sandbox.lifecycle import EXPIRED_AFTER_SECONDS, RETURNED_AFTER_EXPIRY_SECONDS
from distributor.config import Settings
from distributor.db import session_scope
from distributor.delivery import RECLAIMED, delivery_of
from distributor.models import Row, RowTransfer
from tests.acceptance.conftest import card_counts, card_number, enqueue, wait_until_settled
from tests.factories import store_running_batch
from tests.integration.tracking.tracking_helpers import NEVER_CLAIMS
from tests.processes import ServiceProcess, run_distributor, service_env

StartService = Callable[..., ServiceProcess]

TWO_WEEKS_LATER = EXPIRED_AFTER_SECONDS + RETURNED_AFTER_EXPIRY_SECONDS + 60
FAST_CLOCK = 60.0
"""Simulated seconds per real second: a transfer is claimed a real second after it is made."""
WAIT_SECONDS = 30.0
CORRECTED = "+64221119876"
REFUSED_BY_CENTRAPAY = "+15555550100"
"""Not an NZ number: the sandbox refuses a transfer to it (400); our upload never lets one in."""


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_distributor(*args, env=service_env(settings, COLUMNS="200"), timeout=60)


def _resend(settings: Settings, batch_id: int, row_id: int) -> subprocess.CompletedProcess[str]:
    return _cli(settings, "resend", str(batch_id), "--row", str(row_id), "--to", CORRECTED)


def _sent_and_polled(settings: Settings, start_service: StartService, card: str) -> int:
    """A running batch of ``card`` to a recipient who never claims it, sent by a worker, with
    beat polling Centrapay for its transfer every second; the batch's id."""
    batch_id = store_running_batch(settings, [(card, "1234", NEVER_CLAIMS)])
    start_service("worker", TRANSFER_POLL_INTERVAL_SECONDS="1")
    start_service("beat", TRANSFER_POLL_INTERVAL_SECONDS="1")
    enqueue(settings, batch_id)
    assert wait_until_settled(settings, batch_id) == {"sent": 1}
    return batch_id


def _only_row(settings: Settings, batch_id: int) -> Row:
    with session_scope(settings.database_url) as session:
        return session.scalars(select(Row).where(Row.batch_id == batch_id)).one()


def _history(settings: Settings, row_id: int) -> list[tuple[str | None, str | None]]:
    with session_scope(settings.database_url) as session:
        earlier = session.scalars(
            select(RowTransfer).where(RowTransfer.row_id == row_id).order_by(RowTransfer.id)
        )
        return [(one.transfer_status, one.recipient_masked) for one in earlier]


def _wait_for(settings: Settings, batch_id: int, check: Callable[[Row], bool]) -> Row:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check(row := _only_row(settings, batch_id)):
        assert time.monotonic() < deadline, f"row is {row.state}/{row.transfer_status}"
        time.sleep(0.1)
    return row


def _transfers_to(control: httpx.Client, card: str) -> dict[str, int]:
    counts = card_counts(control, [card])[card]
    return {"loads": counts["loads"], "transfers": counts["transfers"]}


def test_a_returned_card_is_resent_to_a_corrected_recipient_with_one_load(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService, tmp_path: Path
) -> None:
    card = card_number(1)
    batch_id = _sent_and_polled(pipeline_settings, start_service, card)
    row = _only_row(pipeline_settings, batch_id)

    refused = _resend(pipeline_settings, batch_id, row.id)
    assert refused.returncode == 1 and "live transfer" in refused.stderr

    control.post("/clock/advance", json={"seconds": TWO_WEEKS_LATER}).raise_for_status()
    _wait_for(pipeline_settings, batch_id, lambda r: r.transfer_status == "returned")
    resent = _resend(pipeline_settings, batch_id, row.id)
    assert resent.returncode == 0, resent.stderr

    after = _wait_for(
        pipeline_settings, batch_id, lambda r: r.state == "sent" and r.transfer_id is not None
    )
    assert after.transfer_id != row.transfer_id and after.recipient == CORRECTED
    assert after.asset_id == row.asset_id
    assert _history(pipeline_settings, row.id) == [("returned", row.recipient_masked)]
    assert _transfers_to(control, card) == {"loads": 1, "transfers": 2}
    report = tmp_path / "report.csv"
    assert _cli(pipeline_settings, "report", str(batch_id), "-o", str(report)).returncode == 0
    assert f"{row.transfer_id} returned {row.recipient_masked}" in report.read_text()
    assert CORRECTED not in report.read_text()


def test_a_card_refused_on_its_recipient_is_resent_from_a_corrections_file(
    pipeline_settings: Settings,
    control: httpx.Client,
    start_service: StartService,
    tmp_path: Path,
) -> None:
    card = card_number(2)
    batch_id = store_running_batch(pipeline_settings, [(card, "1234", REFUSED_BY_CENTRAPAY)])
    start_service("worker", CENTRAPAY_SINGLE_CALL="false")
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"failed": 1}
    failed = _only_row(pipeline_settings, batch_id)
    assert failed.asset_id is not None and failed.error_code == "BAD_REQUEST"

    fixes = tmp_path / "fixes.csv"
    fixes.write_text(f"line,recipientAlias,message\n{failed.line_no},022 111 9876,Sorry!\n")
    resent = _cli(pipeline_settings, "resend", str(batch_id), "--corrections", str(fixes))
    assert resent.returncode == 0, resent.stderr

    after = _wait_for(pipeline_settings, batch_id, lambda r: r.state == "sent")
    assert after.recipient == CORRECTED and after.message == "Sorry!"
    assert _history(pipeline_settings, failed.id) == [(None, failed.recipient_masked)]
    assert _transfers_to(control, card) == {"loads": 1, "transfers": 1}


def test_reclaim_cancels_a_sent_transfer_and_the_card_can_be_resent(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    card = card_number(3)
    batch_id = _sent_and_polled(pipeline_settings, start_service, card)
    sent = _wait_for(pipeline_settings, batch_id, lambda r: r.transfer_status == "sent")

    too_young = _cli(pipeline_settings, "reclaim", str(batch_id), "--older-than", "7d")
    assert too_young.returncode == 0 and "0 transfers reclaimed" in too_young.stdout
    reclaimed = _cli(pipeline_settings, "reclaim", str(batch_id), "--row", str(sent.id))
    assert reclaimed.returncode == 0, reclaimed.stderr
    assert "1 transfers reclaimed" in reclaimed.stdout

    row = _only_row(pipeline_settings, batch_id)
    assert row.transfer_status == "cancelled" and delivery_of(row) == RECLAIMED

    resent = _resend(pipeline_settings, batch_id, row.id)
    assert resent.returncode == 0, resent.stderr
    _wait_for(
        pipeline_settings, batch_id, lambda r: r.state == "sent" and r.transfer_id is not None
    )
    assert _history(pipeline_settings, row.id) == [("cancelled", sent.recipient_masked)]
    assert _transfers_to(control, card) == {"loads": 1, "transfers": 2}


def test_reclaim_refuses_a_transfer_the_recipient_has_claimed(
    pipeline_settings: Settings, control: httpx.Client, start_service: StartService
) -> None:
    control.patch("/config", json={"timeScale": FAST_CLOCK}).raise_for_status()
    batch_id = store_running_batch(pipeline_settings, [(card_number(4), "1234", CORRECTED)])
    start_service("worker")  # no beat: the row still says created when Centrapay has claimed
    enqueue(pipeline_settings, batch_id)
    assert wait_until_settled(pipeline_settings, batch_id) == {"sent": 1}
    time.sleep(2.0)  # 120 simulated seconds: claimed

    refused = _cli(pipeline_settings, "reclaim", str(batch_id))
    assert refused.returncode == 0, refused.stderr
    assert "0 transfers reclaimed" in refused.stdout
    assert "INVALID_ASSET_TRANSFER_STATUS" in refused.stdout
    row = _only_row(pipeline_settings, batch_id)
    assert row.state == "sent" and row.transfer_status == "created"
