"""Send later: `distributor upload --start-at` and the API's ``startAt`` against real Postgres
and Redis; a scheduled batch waits, is started on time, early, or cancelled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from typer.testing import CliRunner

from distributor.api.app import create_app
from distributor.cli import app
from distributor.config import Settings
from distributor.constants import CELERY_QUEUE, CONTROL_QUEUE, BatchState
from distributor.db import session_scope
from distributor.errors import UploadRejected
from distributor.models import Batch
from distributor.pipeline import scheduling
from distributor.pipeline.clock import utcnow
from tests.conftest import TEST_API_TOKEN
from tests.serving import serve_in_thread

CARDS = "recipientAlias,cardNumber,pin,message\n+64221231234,4000123498761,908171,hi\n"
WIDE = "1000"


@pytest.fixture
def environment(
    cli_environment: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The CLI pointed at the test database and Redis; the CSV to upload."""
    monkeypatch.setenv("COLUMNS", WIDE)
    path = tmp_path / "cards.csv"
    path.write_text(CARDS)
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def stored(settings: Settings, batch_id: int) -> Batch:
    with session_scope(settings.database_url) as session:
        return session.get_one(Batch, batch_id)


def queued_messages(settings: Settings) -> int:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return int(client.llen(CELERY_QUEUE)) + int(client.llen(CONTROL_QUEUE))
    finally:
        client.close()


def later(**delta: float) -> datetime:
    return (utcnow() + timedelta(**delta)).replace(microsecond=0)


def test_an_upload_with_a_start_time_waits_scheduled_and_queues_nothing(
    settings: Settings, environment: Path
) -> None:
    start_at = later(days=2).astimezone(datetime.now().astimezone().tzinfo)
    code, out, err = run("upload", str(environment), "--start-at", start_at.isoformat())
    assert (code, err) == (0, "")
    assert f"batch 1 scheduled to start at {start_at.isoformat()}" in out
    batch = stored(settings, 1)
    assert (batch.state, batch.start_at, batch.started_at) == (BatchState.SCHEDULED, start_at, None)
    assert queued_messages(settings) == 0
    code, out, _ = run("status", "1")
    assert "batch 1 cards.csv: scheduled" in out
    assert f"scheduled to start at {batch.start_at:%Y-%m-%d %H:%M:%S}" in out


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2020-12-24T09:00+13:00", "error: --start-at: '2020-12-24T09:00+13:00' is in the past"),
        ("next tuesday", "error: --start-at: 'next tuesday' is not a date and time"),
        ("2099-12-24T09:00", "error: --start-at: '2099-12-24T09:00' has no UTC offset"),
    ],
    ids=["past", "unparseable", "no-offset"],
)
def test_a_start_time_in_the_past_or_unreadable_exits_1_naming_the_option_and_stores_nothing(
    settings: Settings, environment: Path, value: str, says: str
) -> None:
    code, out, err = run("upload", str(environment), "--start-at", value)
    assert (code, out) == (1, "")
    assert err.startswith(says)
    with session_scope(settings.database_url) as session:
        assert session.query(Batch).count() == 0


def test_a_start_time_with_no_start_is_refused(environment: Path) -> None:
    code, _, err = run("upload", str(environment), "--no-start", "--start-at", "2099-01-01T00:00Z")
    assert code == 1
    assert "--start-at and --no-start" in err


def test_a_scheduled_batch_can_be_started_early(settings: Settings, environment: Path) -> None:
    run("upload", str(environment), "--start-at", later(days=1).isoformat())
    code, out, _ = run("start", "1")
    assert (code, out.strip()) == (0, "batch 1 started")
    assert stored(settings, 1).state == BatchState.RUNNING
    assert queued_messages(settings) == 1  # the dispatch of its rows


def test_a_scheduled_batch_can_be_cancelled_and_then_never_starts(
    settings: Settings, environment: Path
) -> None:
    run("upload", str(environment), "--start-at", later(seconds=30).isoformat())
    assert run("cancel", "1")[0] == 0
    with session_scope(settings.database_url) as session:
        assert scheduling.start_due(session, now=utcnow() + timedelta(minutes=1)) == []
    assert stored(settings, 1).state == BatchState.CANCELLED


def test_only_batches_whose_time_has_come_are_started_and_each_once(
    settings: Settings, environment: Path
) -> None:
    run("upload", str(environment), "--start-at", later(minutes=10).isoformat())
    (environment.parent / "other.csv").write_text(CARDS.replace("4000123498761", "4000123498769"))
    run("upload", str(environment.parent / "other.csv"), "--start-at", later(hours=5).isoformat())
    in_an_hour = utcnow() + timedelta(hours=1)
    with session_scope(settings.database_url) as session:
        assert scheduling.start_due(session, now=utcnow()) == []
        assert scheduling.start_due(session, now=in_an_hour) == [1]
        assert scheduling.start_due(session, now=in_an_hour) == []
    first, second = stored(settings, 1), stored(settings, 2)
    assert (first.state, first.started_at) == (BatchState.RUNNING, in_an_hour)
    assert second.state == BatchState.SCHEDULED


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("2099-12-24T09:00+13:00", datetime(2099, 12, 23, 20, 0, tzinfo=UTC)),
        ("2099-12-24T09:00:30Z", datetime(2099, 12, 24, 9, 0, 30, tzinfo=UTC)),
        (" 2099-12-24 09:00-05:00 ", datetime(2099, 12, 24, 14, 0, tzinfo=UTC)),
    ],
)
def test_a_start_time_is_read_in_iso_8601_with_its_offset(raw: str, parsed: datetime) -> None:
    assert scheduling.parse_start_at(raw, now=utcnow(), field="startAt") == parsed


def test_a_start_time_now_is_already_past() -> None:
    now = utcnow()
    with pytest.raises(UploadRejected, match=r"startAt: .* is in the past"):
        scheduling.parse_start_at(now.isoformat(), now=now, field="startAt")


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[httpx.Client, list[int]]]:
    dispatched: list[int] = []
    with (
        serve_in_thread(create_app(settings, dispatch=dispatched.append)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as client,
    ):
        yield client, dispatched


def _upload(client: httpx.Client, **form: str) -> httpx.Response:
    files = {"file": ("cards.csv", CARDS.encode(), "text/csv")}
    return client.post("/batches", files=files, data=form)


def test_the_api_upload_takes_a_start_time_and_shows_it(
    api: tuple[httpx.Client, list[int]],
) -> None:
    client, dispatched = api
    start_at = later(hours=3)
    answer = _upload(client, startAt=start_at.isoformat())
    assert answer.status_code == 201, answer.text
    batch_id = answer.json()["id"]
    assert answer.json()["start_at"] == start_at.isoformat()
    assert dispatched == []
    shown = client.get(f"/batches/{batch_id}").json()
    assert (shown["state"], shown["start_at"]) == ("scheduled", start_at.isoformat())
    assert shown["started_at"] is None
    assert client.post(f"/batches/{batch_id}/start").json()["state"] == "running"
    assert dispatched == [batch_id]


def test_the_dashboard_shows_when_a_scheduled_batch_starts_and_offers_to_start_it(
    api: tuple[httpx.Client, list[int]],
) -> None:
    client, _ = api
    start_at = later(hours=3)
    batch_id = _upload(client, startAt=start_at.isoformat()).json()["id"]
    page = client.get(f"/dashboard/batches/{batch_id}").text
    assert start_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") in page
    assert f'action="/dashboard/batches/{batch_id}/start"' in page


@pytest.mark.parametrize(
    ("value", "says"),
    [("2001-01-01T00:00Z", "startAt: '2001-01-01T00:00Z' is in the past"), ("soon", "startAt:")],
    ids=["past", "unparseable"],
)
def test_an_api_start_time_in_the_past_or_unreadable_is_a_422_naming_the_field(
    settings: Settings, api: tuple[httpx.Client, list[int]], value: str, says: str
) -> None:
    answer = _upload(api[0], startAt=value)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(says)
    with session_scope(settings.database_url) as session:
        assert session.query(Batch).count() == 0
