"""Every route of the API and the dashboard, listed from the app itself, refuses a request
without a valid token; the few public ones are named here, exactly."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from distributor.api.app import create_app
from distributor.config import Settings
from distributor.vault import vault_from_settings
from tests.conftest import TEST_API_TOKEN
from tests.integration.security.security_helpers import app_routes, upload
from tests.serving import serve_in_thread

PUBLIC = {
    # Liveness for load balancers and orchestrators: answers "ok" and nothing else.
    ("GET", "/health"),
    # Centrapay cannot send our token; the body is only a hint, re-fetched with our key.
    ("POST", "/webhooks/centrapay/asset-transfers"),
    # The API's description (no data): operators and client generators read it.
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("HEAD", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("HEAD", "/redoc"),
}
WRONG = "not-the-api-token"


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"operator:{password}".encode()).decode()


NO_VALID_TOKEN = {
    "none": {},
    "wrong bearer": {"Authorization": f"Bearer {WRONG}"},
    "empty bearer": {"Authorization": "Bearer"},
    "wrong basic": {"Authorization": _basic(WRONG)},
    "empty basic": {"Authorization": _basic("")},
    "token without a scheme": {"Authorization": TEST_API_TOKEN},
    "token as a query parameter": {},
}


def _concrete(path: str, batch_id: int) -> str:
    return re.sub(r"\{[^}]+\}", str(batch_id), path)


@pytest.fixture
def batch_id(settings: Settings) -> int:
    """A batch with rows, so that a route answering without a token would show data."""
    return upload(settings.database_url, vault_from_settings(settings)).batch_id


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[FastAPI, str]]:
    """The app and its URL, served over real HTTP."""
    app = create_app(settings, dispatch=lambda _batch_id: None)
    with serve_in_thread(app) as url:
        yield app, url


def _call(url: str, method: str, path: str, headers: dict[str, str], **params: Any) -> int:
    with httpx.Client(base_url=url, headers=headers) as client:
        return client.request(method, path, params=params or None).status_code


def test_the_route_list_covers_the_api_the_dashboard_and_the_public_routes(
    served: tuple[FastAPI, str],
) -> None:
    routes = app_routes(served[0])
    expected = {
        ("POST", "/batches"),
        ("GET", "/batches/{batch_id}/rows"),
        ("GET", "/batches/{batch_id}/report.csv"),
        ("GET", "/metrics"),
        ("GET", "/dashboard"),
        ("POST", "/dashboard/batches/{batch_id}/retry"),
    }
    assert expected | PUBLIC <= routes
    assert len(routes) >= 25


@pytest.mark.parametrize("how", list(NO_VALID_TOKEN))
def test_every_route_but_the_public_ones_refuses_a_request_without_a_valid_token(
    served: tuple[FastAPI, str], batch_id: int, how: str
) -> None:
    app, url = served
    params = {"token": TEST_API_TOKEN} if how == "token as a query parameter" else {}
    answered = {
        (method, path): _call(url, method, _concrete(path, batch_id), NO_VALID_TOKEN[how], **params)
        for method, path in sorted(app_routes(app))
    }
    open_routes = {route for route, status in answered.items() if status != 401}
    assert open_routes == PUBLIC, {route: answered[route] for route in open_routes ^ PUBLIC}


def test_with_no_token_configured_nothing_but_the_public_routes_answers(
    settings: Settings, batch_id: int
) -> None:
    app = create_app(
        settings.model_copy(update={"distributor_api_tokens": []}), dispatch=lambda _id: None
    )
    with serve_in_thread(app) as url:
        for headers in ({"Authorization": "Bearer"}, {"Authorization": _basic("")}, {}):
            for method, path in sorted(app_routes(app) - PUBLIC):
                status = _call(url, method, _concrete(path, batch_id), headers)
                assert status == 401, (method, path, headers)


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {TEST_API_TOKEN}"}, {"Authorization": _basic(TEST_API_TOKEN)}],
    ids=["bearer", "basic"],
)
def test_with_the_token_each_protected_route_is_reached(
    served: tuple[FastAPI, str], batch_id: int, headers: dict[str, str]
) -> None:
    """The 401s above come from the token check, not from a path or method that is wrong."""
    app, url = served
    basic = headers["Authorization"].startswith("Basic")
    for method, path in sorted(app_routes(app) - PUBLIC):
        if basic and not path.startswith("/dashboard"):
            continue  # basic auth is for browsers, on the dashboard only
        status = _call(url, method, _concrete(path, batch_id), headers)
        assert status not in (401, 404, 405), (method, path, status)


def test_the_public_routes_show_no_data(served: tuple[FastAPI, str], batch_id: int) -> None:
    _, url = served
    with httpx.Client(base_url=url) as client:
        health = client.get("/health")
        hint = client.post("/webhooks/centrapay/asset-transfers", json={"id": "t-unknown"})
        pages = [client.get(path).text for method, path in PUBLIC if method == "GET"]
    assert health.json() == {"status": "ok"}
    assert (hint.status_code, hint.json()) == (202, {"status": "accepted"})
    for page in pages:
        assert "*******19468" not in page and "+64*****1846" not in page
