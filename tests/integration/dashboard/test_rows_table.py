"""The batch page's rows: the rows table, invalid rows and why, the run chart, the buttons."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from distributor.api.dashboard_charts import batch_timeline
from distributor.api.routes.dashboard import ROWS_PER_PAGE
from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.models import Batch, Row, RowTransfer
from tests.conftest import TEST_API_TOKEN
from tests.integration.dashboard.dashboard_helpers import Spec, card_for, specs, store_batch

PROBLEMS_CSV = (
    "+64221231234,23403321042,1111,Hello Bob\n"
    "+1555,23403321043,1112,Hi\n"
    "+64221231236,23403321042,1113,Same card\n"
    "+64221231237,2.3403321044E+10,1114,Scientific\n"
    "+15550100,23403321045,12x4,Two problems\n"
)


def _section(page: httpx.Response, element_id: str) -> str:
    start = page.text.index(f'id="{element_id}"')
    return page.text[start : page.text.index("</table>", start)]


def _lines(page: httpx.Response) -> list[int]:
    return [int(line) for line in re.findall(r'<tr id="line-(\d+)"', _section(page, "rows-table"))]


def _cells(html: str) -> list[list[str]]:
    """The text of each body cell, row by row, tags and surrounding space dropped."""
    body = html[html.index("<tbody>") :]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.DOTALL)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.DOTALL)
        ]
        for row in rows
    ]


def _mixed() -> list[Spec]:
    return [
        *specs(sent=3),
        Spec(state=RowState.FAILED, error_code="UNKNOWN_ASSET"),
        Spec(state=RowState.FAILED, error_code="TIMEOUT"),
        *specs(pending=2),
        Spec(state=RowState.FAILED, error_code="UNKNOWN_ASSET"),
    ]


def test_the_rows_table_filters_by_state_and_error_code_and_shows_masked_rows_only(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, _mixed(), state=BatchState.RUNNING)
    page = browser.get(f"/dashboard/batches/{batch_id}")
    assert page.status_code == 200
    assert _lines(page) == [1, 2, 3, 4, 5, 6, 7, 8]
    first = _cells(_section(page, "rows-table"))[0]
    assert first[:5] == [
        "1",
        "+64*****0001",
        "*******00001",
        "sent",
        "transferred, transfer id pending",
    ]
    for line in range(1, 9):
        assert f"+6422000{line:04d}" not in page.text
        assert card_for(0, line) not in page.text

    failed = browser.get(f"/dashboard/batches/{batch_id}", params={"state": "failed"})
    assert _lines(failed) == [4, 5, 8]
    assert f'content="5; url=/dashboard/batches/{batch_id}?state=failed"' in failed.text
    unknown = browser.get(
        f"/dashboard/batches/{batch_id}", params={"state": "failed", "error_code": "UNKNOWN_ASSET"}
    )
    assert _lines(unknown) == [4, 8]
    assert '<option value="failed" selected>' in unknown.text
    none = browser.get(f"/dashboard/batches/{batch_id}", params={"error_code": "NO_SUCH_CODE"})
    assert 'id="rows-table"' not in none.text
    assert "No rows match this filter" in none.text
    assert (
        browser.get(f"/dashboard/batches/{batch_id}", params={"state": "lost"}).status_code == 422
    )
    assert browser.get(f"/dashboard/batches/{batch_id}", params={"line": 0}).status_code == 422
    # The filter form sends its empty fields too: they filter nothing.
    blank = browser.get(f"/dashboard/batches/{batch_id}?state=&error_code=&line=")
    assert blank.status_code == 200
    assert _lines(blank) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_the_rows_table_pages_and_finds_a_line_on_its_page(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(settings, specs(pending=ROWS_PER_PAGE + 12), state=BatchState.QUEUED)
    first = browser.get(f"/dashboard/batches/{batch_id}")
    assert _lines(first) == list(range(1, ROWS_PER_PAGE + 1))
    later = re.search(r'href="([^"]+)" id="rows-later"', first.text)
    assert later is not None
    assert 'id="rows-earlier"' not in first.text
    second = browser.get(later.group(1).replace("&amp;", "&"))
    assert _lines(second) == list(range(ROWS_PER_PAGE + 1, ROWS_PER_PAGE + 13))
    assert 'id="rows-later"' not in second.text

    found = browser.get(f"/dashboard/batches/{batch_id}", params={"line": ROWS_PER_PAGE + 7})
    assert _lines(found) == list(range(ROWS_PER_PAGE + 1, ROWS_PER_PAGE + 13))
    assert f'<tr id="line-{ROWS_PER_PAGE + 7}" class="found">' in found.text
    assert found.text.count('class="found"') == 1
    missing = browser.get(f"/dashboard/batches/{batch_id}", params={"line": 999})
    assert 'id="line-missing"' in missing.text


def test_a_row_shows_its_earlier_transfers(settings: Settings, browser: httpx.Client) -> None:
    batch_id = store_batch(settings, specs(sent=2), state=BatchState.DONE)
    with session_scope(settings.database_url) as session:
        row_id = session.query(Row.id).filter_by(batch_id=batch_id, line_no=2).scalar()
        session.add(
            RowTransfer(
                row_id=row_id,
                transfer_id="tr-first",
                transfer_status="cancelled",
                recipient_masked="+64*****9999",
                replaced_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            )
        )
    page = browser.get(f"/dashboard/batches/{batch_id}")
    rows = _cells(_section(page, "rows-table"))
    assert rows[0][-1] == ""
    assert " ".join(rows[1][-1].split()) == (
        "cancelled to +64*****9999 tr-first replaced 2026-01-02 03:04:05 UTC"
    )


def test_invalid_and_duplicate_rows_are_listed_with_line_field_and_problem(
    base_url: str, browser: httpx.Client
) -> None:
    answer = httpx.post(
        f"{base_url}/batches",
        headers={"Authorization": f"Bearer {TEST_API_TOKEN}"},
        files={"file": ("problems.csv", PROBLEMS_CSV.encode(), "text/csv")},
    )
    assert answer.status_code == 201, answer.text
    page = browser.get(f"/dashboard/batches/{answer.json()['id']}")
    listed = [cells[:4] for cells in _cells(_section(page, "invalid-rows"))]
    by_line = {(line, field): (state, problem) for line, state, field, problem in listed}
    assert by_line[("2", "recipientAlias")][0] == "invalid"
    assert by_line[("3", "cardNumber")] == ("duplicate", "the same card as line 1")
    # A problem whose text holds a semicolon stays one problem.
    state, problem = by_line[("4", "cardNumber")]
    assert (state, problem.endswith("format the column as text")) == ("invalid", True)
    assert {field for line, _state, field, _problem in listed if line == "5"} == {
        "recipientAlias",
        "pin",
    }
    assert "1" not in {line for line, *_ in listed}
    assert "23403321043" not in page.text
    assert "+1555" not in page.text


def test_the_chart_draws_rows_per_second_and_the_answers_rows_hold(
    settings: Settings, browser: httpx.Client
) -> None:
    started = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
    rows = [
        *specs(sent=4),
        Spec(state=RowState.FAILED, error_code="RATE_LIMITED"),
        Spec(state=RowState.FAILED, error_code="SERVER_ERROR"),
        Spec(state=RowState.FAILED, error_code="TIMEOUT"),
        Spec(state=RowState.FAILED, error_code="UNKNOWN_ASSET"),
        Spec(state=RowState.INVALID, error_code="INVALID_PIN"),
    ]
    batch_id = store_batch(
        settings,
        rows,
        state=BatchState.DONE,
        started_at=started,
        finished_at=started + timedelta(seconds=120),
    )
    seconds = {1: 10, 2: 10.5, 3: 11, 4: 11.9, 5: 50, 6: 50, 7: 100, 8: 101, 9: 30}
    with session_scope(settings.database_url) as session:
        for line, after in seconds.items():
            at = started + timedelta(seconds=after)
            session.execute(
                update(Row)
                .where(Row.batch_id == batch_id, Row.line_no == line)
                .values(sent_at=at if line <= 4 else None, updated_at=at)
            )
        batch = session.get(Batch, batch_id)
        assert batch is not None
        timeline = batch_timeline(session, batch, now=started)
    assert timeline is not None
    assert (timeline.bucket_seconds, len(timeline.settled)) == (2, 60)
    assert {index: rows for index, rows in enumerate(timeline.settled) if rows} == {
        5: 4,
        25: 2,
        50: 2,
    }
    assert timeline.answers[25] == {"2xx": 0, "429": 1, "5xx": 1, "timeout": 0, "other": 0}
    assert timeline.peak_rate == 2.0

    page = browser.get(f"/dashboard/batches/{batch_id}")
    rate = page.text[page.text.index('id="rate-chart"') : page.text.index("</figure>")]
    assert '<text class="axis" x="54" y="10" text-anchor="end">2.00</text>' in rate
    assert rate.count('<rect class="rate"') == 3
    totals = dict(re.findall(r'data-answer="([^"]+)">[^<]*<b>(\d+)</b>', page.text))
    assert totals == {"2xx": "4", "429": "1", "5xx": "1", "timeout": "1", "other": "1"}


def test_a_batch_not_started_has_no_chart(settings: Settings, browser: httpx.Client) -> None:
    batch_id = store_batch(settings, specs(pending=2), state=BatchState.QUEUED)
    page = browser.get(f"/dashboard/batches/{batch_id}")
    assert 'id="rate-chart"' not in page.text
    assert "Not started yet." in page.text


@pytest.mark.parametrize(
    ("state", "rows", "shown"),
    [
        (BatchState.QUEUED, specs(pending=2), {"start", "cancel"}),
        (BatchState.SCHEDULED, specs(pending=2), {"start", "cancel"}),
        (BatchState.RUNNING, specs(sent=1, pending=1), {"pause", "cancel"}),
        (BatchState.RUNNING, specs(sent=1, failed=1), {"pause", "cancel", "retry"}),
        (BatchState.PAUSED, specs(pending=2), {"resume", "cancel"}),
        (BatchState.DONE, specs(sent=2), set()),
        (BatchState.DONE, specs(sent=1, failed=1), {"cancel", "retry"}),
        (BatchState.CANCELLED, specs(sent=1, cancelled=1), set()),
    ],
)
def test_the_page_shows_only_the_buttons_the_batch_state_allows(
    settings: Settings, browser: httpx.Client, state: str, rows: list[Spec], shown: set[str]
) -> None:
    batch_id = store_batch(settings, rows, state=state)
    page = browser.get(f"/dashboard/batches/{batch_id}")
    actions = set(re.findall(rf'action="/dashboard/batches/{batch_id}/(\w+)"', page.text))
    assert actions == shown
