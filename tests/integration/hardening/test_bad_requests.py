"""Malformed API requests: bad ids, bodies, content types, tokens and query values all get
a 4xx that says what is wrong, never a 500, and store nothing.

The tests share one database and server (``shared_api``): none of them stores anything.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from distributor.config import Settings
from tests.integration.hardening.hardening_helpers import stored

GOOD_FILE = b"+64221231001,23403321001,1111,Hello\n"
BIG = 2**63  # one past the largest id Postgres can hold
BATCH_ROUTES = [
    ("GET", "/batches/{id}"),
    ("GET", "/batches/{id}/rows"),
    ("POST", "/batches/{id}/start"),
    ("POST", "/batches/{id}/pause"),
    ("POST", "/batches/{id}/resume"),
    ("POST", "/batches/{id}/cancel"),
    ("POST", "/batches/{id}/retry"),
]
OTHER_ROUTES = [  # outside the batches router
    ("GET", "/batches/{id}/report.csv"),
    ("GET", "/dashboard/batches/{id}"),
    ("GET", "/dashboard/batches/{id}/report.csv"),
]
OUT_OF_RANGE = ["0", "-1", str(BIG), str(2**64), "9" * 40]
NOT_AN_INT = ["abc", "1.5", "1e3", "0x10", "%00", "%20", "\uff11"]  # the last: a full-width 1


@pytest.fixture(scope="module")
def batch_id(shared_api: httpx.Client) -> int:
    """A stored batch of one pending row."""
    answer = _upload(shared_api)
    assert answer.status_code == 201, answer.text
    batch: int = answer.json()["id"]
    return batch


@pytest.fixture
def api(shared_api: httpx.Client, batch_id: int) -> httpx.Client:
    """The shared client, once the module's batch exists."""
    return shared_api


@pytest.fixture
def nothing_stored(shared_settings: Settings) -> Iterator[None]:
    """Fails the test if it stored a batch or a row."""
    before = stored(shared_settings.database_url)
    yield
    assert stored(shared_settings.database_url) == before


def _upload(api: httpx.Client, form: dict[str, str] | None = None) -> httpx.Response:
    return api.post("/batches", files={"file": ("cards.csv", GOOD_FILE, "text/csv")}, data=form)


def _problem(answer: httpx.Response) -> str:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    return answer.text


@pytest.mark.parametrize(("method", "route"), BATCH_ROUTES)
@pytest.mark.parametrize("batch_id", OUT_OF_RANGE + NOT_AN_INT)
def test_a_batch_id_that_cannot_exist_is_a_422(
    api: httpx.Client, method: str, route: str, batch_id: str
) -> None:
    answer = api.request(method, route.format(id=batch_id))
    assert answer.status_code == 422, answer.text
    assert "batch_id" in answer.text


@pytest.mark.parametrize(("method", "route"), BATCH_ROUTES + OTHER_ROUTES)
def test_a_batch_that_does_not_exist_is_a_404(api: httpx.Client, method: str, route: str) -> None:
    answer = api.request(method, route.format(id=BIG - 1))
    assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(("method", "route"), OTHER_ROUTES)
def test_a_batch_id_past_bigint_on_the_report_and_dashboard_is_a_4xx(
    api: httpx.Client, method: str, route: str
) -> None:
    _problem(api.request(method, route.format(id=BIG)))


def test_an_offset_past_bigint_on_the_dashboard_is_a_4xx(api: httpx.Client) -> None:
    _problem(api.get("/dashboard", params={"offset": BIG}))


@pytest.mark.parametrize(
    "params",
    [
        {"state": "bogus"},
        {"state": ""},
        {"limit": 0},
        {"limit": -1},
        {"limit": 100_000},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": BIG},
        {"offset": 2**70},
        {"error_code": "A\x00B"},
        {"error_code": "\n"},
        {"error_code": "X" * 65},
    ],
    ids=repr,
)
def test_an_unknown_query_value_is_a_422_naming_it(
    api: httpx.Client, batch_id: int, params: dict[str, str | int]
) -> None:
    [name] = params
    for path in (f"/batches/{batch_id}/rows", "/batches"):
        if name in ("state", "error_code") and path == "/batches":
            continue
        answer = api.get(path, params=params)
        assert answer.status_code == 422, answer.text
        assert name in answer.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "JSON decode error"),
        (b"not json", "JSON decode error"),
        (b"[]", "valid dictionary"),
        (b'"retry"', "valid dictionary"),
        (b'{"row_ids": "all"}', "valid list"),
        (b'{"row_ids": [1.5]}', "row_ids"),
        (b'{"row_ids": [-1]}', "greater than or equal to 1"),
        (b'{"row_ids": [9223372036854775808]}', "less than or equal to"),
        (b'{"row_ids": [1e400]}', '"input":"inf"'),
        (b'{"row_ids": [NaN, -Infinity]}', '"input":"nan"'),
        (b'{"row_ids": [' + b"9" * 5000 + b"]}", ""),
        (b'{"row_ids": [' + b",".join(b"%d" % n for n in range(1, 70_000)) + b"]}", "at most"),
        (b'{"error_codes": [1]}', "valid string"),
        (b'{"error_codes": ["A\\u0000B"]}', "pattern"),
        (b'{"error_codes": ["' + b"X" * 65 + b'"]}', "at most 64"),
        (b"[" * 100_000 + b"]" * 100_000, ""),
    ],
    ids=lambda value: repr(value)[:40],
)
def test_a_bad_retry_body_is_a_4xx(
    api: httpx.Client, batch_id: int, body: bytes, says: str
) -> None:
    answer = api.post(
        f"/batches/{batch_id}/retry", content=body, headers={"Content-Type": "application/json"}
    )
    assert says in _problem(answer)


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {"file": "recipientAlias,cardNumber\n+64221231001,23403321001"}},
        {"data": {"type": "epay.nzd.main"}},
        {"content": GOOD_FILE, "headers": {"Content-Type": "text/csv"}},
        {"content": b"", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
        {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
        {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data"}},
        {"files": {"document": ("cards.csv", GOOD_FILE)}},
        {"data": {"file": "+64221231001,23403321001,1111,Hello"}},
    ],
    ids=[
        "json",
        "form-without-file",
        "bare-csv",
        "empty-multipart",
        "broken-multipart",
        "no-boundary",
        "file-under-another-name",
        "file-as-text",
    ],
)
@pytest.mark.usefixtures("nothing_stored")
def test_an_upload_without_a_file_part_is_a_4xx_and_stores_nothing(
    api: httpx.Client, request_kwargs: dict[str, object]
) -> None:
    _problem(api.post("/batches", **request_kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"senderName": "Kia\x00ora"}, "the batch sender name contains a NUL character"),
        ({"description": "a\x00"}, "the batch description contains a NUL character"),
        (
            {"senderName": "x" * 31},
            "the batch sender name (--sender-name, senderName) is longer than 30 characters",
        ),
        (
            {"description": "x" * 201},
            "the batch description (--description, description) is longer than 200 characters",
        ),
        ({"type": "epay.usd.main"}, "type must be one of epay.nzd.main, epay.nzd.test"),
        ({"issuer": "\x00"}, "issuer must be one of ezipay"),
        ({"start": "maybe"}, "start"),
    ],
    ids=repr,
)
@pytest.mark.usefixtures("nothing_stored")
def test_a_bad_upload_option_is_a_4xx_and_stores_nothing(
    api: httpx.Client, form: dict[str, str], says: str
) -> None:
    assert says in _problem(_upload(api, form))


@pytest.mark.parametrize(
    "filename", [b"cards\x00.csv", b"x" * 300 + b".csv"], ids=["nul", "too-long"]
)
@pytest.mark.usefixtures("nothing_stored")
def test_a_file_name_that_cannot_be_stored_is_a_4xx(api: httpx.Client, filename: bytes) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: text/csv\r\n\r\n'
        + GOOD_FILE
        + b"\r\n--b--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    assert "the batch name" in _problem(api.post("/batches", content=body, headers=headers))


def _api_routes(api: httpx.Client) -> list[tuple[str, str]]:
    schema = api.get("/openapi.json").json()
    found = [
        (method.upper(), path.replace("{batch_id}", "1"))
        for path, operations in schema["paths"].items()
        for method in operations
        if not path.startswith(("/health", "/webhooks"))  # public by design
    ]
    return [*found, ("GET", "/dashboard"), ("GET", "/dashboard/batches/1")]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-token",
        "Bearer test-api-token-and-more",
        "bearer\ttest-api-token",
        "Token test-api-token",
        "Basic dGVzdC1hcGktdG9rZW4=",  # the token, but not as user:password
        "Basic %%%",
        "Bearer t\u00e9st".encode(),
    ],
    ids=repr,
)
@pytest.mark.usefixtures("nothing_stored")
def test_every_route_but_health_and_webhooks_wants_the_token(
    api: httpx.Client, authorization: str | bytes | None
) -> None:
    value = authorization.encode() if isinstance(authorization, str) else authorization
    headers = [] if value is None else [(b"Authorization", value)]
    with httpx.Client(base_url=str(api.base_url), headers=headers) as stranger:
        for method, path in _api_routes(api):
            files = (
                {"file": ("a.csv", GOOD_FILE)} if path == "/batches" and method == "POST" else None
            )
            answer = stranger.request(method, path, files=files)
            assert answer.status_code == 401, (method, path, answer.text)
