"""The batches API over real HTTP: upload, inspect, list rows, control; token required."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from distributor.api.app import create_app
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Batch, Row
from tests.conftest import TEST_API_TOKEN
from tests.serving import serve_in_thread

SEED_ROWS = (
    "+64221231234,23403321042,1111,Hello Bob! Here's your giftcard\n"
    "+64221231235,23403321043,1112,Hello Alice! Here's your giftcard\n"
    '+64221231236,23403321044,1113,"Hello Eve, here\'s your ""giftcard"""\n'
)
SECRETS = ("23403321042", "23403321043", "23403321044", "1111", "1112", "1113")


@pytest.fixture
def api(settings: Settings, dispatched: list[int]) -> Iterator[httpx.Client]:
    app = create_app(settings, dispatch=dispatched.append)
    with (
        serve_in_thread(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as client,
    ):
        yield client


def _upload(api: httpx.Client, body: str, **form: str) -> httpx.Response:
    return api.post("/batches", files={"file": ("cards.csv", body.encode(), "text/csv")}, data=form)


def _stored(settings: Settings) -> tuple[int, int]:
    with session_scope(settings.database_url) as session:
        batches = session.scalar(select(func.count()).select_from(Batch))
        rows = session.scalar(select(func.count()).select_from(Row))
    return batches or 0, rows or 0


def test_an_upload_stores_the_batch_starts_it_and_answers_with_counts(
    api: httpx.Client, dispatched: list[int]
) -> None:
    answer = _upload(api, SEED_ROWS)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["counts"]["pending"] == 3
    assert dispatched == [body["id"]]
    shown = api.get(f"/batches/{body['id']}").json()
    assert shown["state"] == "running"
    assert shown["counts"]["pending"] == 3


def test_an_upload_with_start_false_stays_queued_until_started(
    api: httpx.Client, dispatched: list[int]
) -> None:
    batch_id = _upload(api, SEED_ROWS, start="false").json()["id"]
    assert dispatched == []
    assert api.get(f"/batches/{batch_id}").json()["state"] == "queued"
    assert api.post(f"/batches/{batch_id}/start").status_code == 200
    assert dispatched == [batch_id]
    assert api.post(f"/batches/{batch_id}/start").status_code == 409


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_every_batch_route_wants_a_valid_token(api: httpx.Client, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=str(api.base_url), headers=headers) as bare:
        assert bare.get("/batches").status_code == 401
        files = {"file": ("a.csv", SEED_ROWS.encode())}
        assert bare.post("/batches", files=files).status_code == 401
        assert bare.get("/batches/1/rows").status_code == 401


def test_rows_are_listed_masked_and_filtered_by_state(api: httpx.Client) -> None:
    body = SEED_ROWS + "+64221231237,abc,1114,bad card\n"
    batch_id = _upload(api, body).json()["id"]
    everything = api.get(f"/batches/{batch_id}/rows")
    assert len(everything.json()["items"]) == 4
    invalid = api.get(f"/batches/{batch_id}/rows", params={"state": "invalid"}).json()["items"]
    assert [row["line_no"] for row in invalid] == [4]
    assert invalid[0]["error_code"] == "INVALID_CARD_NUMBER"
    first_page = api.get(f"/batches/{batch_id}/rows", params={"limit": 2}).json()["items"]
    second_page = api.get(f"/batches/{batch_id}/rows", params={"limit": 2, "offset": 2}).json()
    assert [r["line_no"] for r in first_page + second_page["items"]] == [1, 2, 3, 4]
    pending = api.get(f"/batches/{batch_id}/rows", params={"state": "pending"}).json()["items"]
    assert pending[0]["card_masked"] == "*******21042"
    assert pending[0]["recipient_masked"] == "+64*****1234"


def test_no_pin_or_card_number_appears_in_any_answer(api: httpx.Client) -> None:
    upload = _upload(api, SEED_ROWS)
    batch_id = upload.json()["id"]
    answers = [
        upload.text,
        api.get("/batches").text,
        api.get(f"/batches/{batch_id}").text,
        api.get(f"/batches/{batch_id}/rows").text,
    ]
    for text in answers:
        for secret in SECRETS:
            assert secret not in text


def test_a_file_of_only_invalid_rows_is_refused_and_nothing_is_stored(
    api: httpx.Client, settings: Settings
) -> None:
    answer = _upload(api, "+64221231234,abc,1111,hi\nnot-a-phone,123,1,hi\n")
    assert answer.status_code == 422
    assert "no valid row" in answer.json()["detail"]
    assert _stored(settings) == (0, 0)


def test_an_unknown_type_is_refused(api: httpx.Client, settings: Settings) -> None:
    answer = _upload(api, SEED_ROWS, type="epay.usd.main")
    assert answer.status_code == 422
    assert "type must be one of" in answer.json()["detail"]
    assert _stored(settings) == (0, 0)


def test_an_unknown_batch_is_a_404(api: httpx.Client) -> None:
    assert api.get("/batches/999999").status_code == 404
    assert api.get("/batches/999999/rows").status_code == 404
    assert api.post("/batches/999999/pause").status_code == 404


def test_a_batch_can_be_paused_resumed_and_cancelled(
    api: httpx.Client, dispatched: list[int]
) -> None:
    batch_id = _upload(api, SEED_ROWS).json()["id"]
    assert api.post(f"/batches/{batch_id}/pause").json()["state"] == "paused"
    assert api.post(f"/batches/{batch_id}/resume").json()["state"] == "running"
    assert dispatched == [batch_id, batch_id]
    cancelled = api.post(f"/batches/{batch_id}/cancel").json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["counts"]["cancelled"] == 3
    assert api.post(f"/batches/{batch_id}/resume").status_code == 409
    refused = api.post(f"/batches/{batch_id}/pause")
    assert refused.status_code == 409
    assert "cancelled, not running or queued" in refused.json()["detail"]


def test_retry_with_nothing_failed_retries_nothing(api: httpx.Client) -> None:
    batch_id = _upload(api, SEED_ROWS).json()["id"]
    answer = api.post(f"/batches/{batch_id}/retry", json={"error_codes": ["UNKNOWN_ASSET"]})
    assert answer.json() == {"retried": 0, "refused": []}
