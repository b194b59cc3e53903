"""GET /batches/{id}/report.csv over real HTTP: a streamed, masked CSV attachment."""

from __future__ import annotations

import io

import httpx
import pytest

from distributor.config import Settings
from distributor.db import session_scope
from distributor.report import write_report
from tests.integration.report.report_helpers import (
    EXPECTED,
    SECRETS,
    parse,
    without_database_times,
)


def test_the_report_is_a_streamed_csv_attachment_of_the_rows(
    api: httpx.Client, settings: Settings, batch_id: int
) -> None:
    answer = api.get(f"/batches/{batch_id}/report.csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="batch-{batch_id}-report.csv"'
    )
    assert answer.headers["transfer-encoding"] == "chunked"
    assert without_database_times(parse(answer.text)) == EXPECTED
    written = io.StringIO(newline="")
    with session_scope(settings.database_url) as session:
        write_report(session, batch_id=batch_id, out=written)
    assert answer.text == written.getvalue()


def test_no_pin_card_number_or_clear_recipient_appears_in_the_report_answer(
    api: httpx.Client, batch_id: int
) -> None:
    answer = api.get(f"/batches/{batch_id}/report.csv")
    for secret in SECRETS:
        assert secret not in answer.text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_the_report_wants_a_valid_token(
    base_url: str, batch_id: int, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=base_url, headers=headers) as bare:
        answer = bare.get(f"/batches/{batch_id}/report.csv")
    assert answer.status_code == 401
    assert "+64*****" not in answer.text


def test_an_unknown_batch_has_no_report(api: httpx.Client) -> None:
    answer = api.get("/batches/999999/report.csv")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "batch 999999 does not exist"}
