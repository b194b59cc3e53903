"""The API served over real HTTP with small upload limits: on the test's own database, or
on one shared by a module's tests that store nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import delete

from distributor.api.app import create_app
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Batch, Row
from tests.conftest import settings_for
from tests.integration.hardening.hardening_helpers import AUTH, MAX_BYTES, MAX_ROWS, stored
from tests.resources import fresh_database
from tests.serving import serve_in_thread


@pytest.fixture
def limited_settings(settings: Settings) -> Settings:
    """The test's settings with UPLOAD_MAX_ROWS and UPLOAD_MAX_BYTES set small."""
    return settings.model_copy(update={"upload_max_rows": MAX_ROWS, "upload_max_bytes": MAX_BYTES})


@pytest.fixture
def base_url(limited_settings: Settings) -> Iterator[str]:
    """The whole API, served by uvicorn in a thread; started batches go nowhere."""
    with serve_in_thread(create_app(limited_settings, dispatch=lambda _batch_id: None)) as url:
        yield url


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    """A client with the API token and a fresh connection per request: a refused upload
    may leave its connection closed by the server."""
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base_url, headers=AUTH, limits=limits, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def shared_settings(template_database: str, redis_base_url: str) -> Iterator[Settings]:
    """Limited settings on a database shared by one module's tests, for requests that must
    store nothing (they compare what is stored before and after, not with zero)."""
    with fresh_database("distributor_h", template=template_database) as url:
        upload_limits = {"upload_max_rows": MAX_ROWS, "upload_max_bytes": MAX_BYTES}
        yield settings_for(url, redis_base_url).model_copy(update=upload_limits)


@pytest.fixture(scope="module")
def shared_api(shared_settings: Settings) -> Iterator[httpx.Client]:
    """A client with the API token to an app on the module's shared database."""
    app = create_app(shared_settings, dispatch=lambda _batch_id: None)
    limits = httpx.Limits(max_keepalive_connections=0)
    with (
        serve_in_thread(app) as url,
        httpx.Client(base_url=url, headers=AUTH, limits=limits, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def emptied_api(shared_api: httpx.Client, shared_settings: Settings) -> Iterator[httpx.Client]:
    """The shared client on an empty database, emptied again after the test: the next
    test may upload the same cards without their being duplicates."""
    assert stored(shared_settings.database_url) == (0, 0)
    yield shared_api
    with session_scope(shared_settings.database_url) as session:
        session.execute(delete(Row))
        session.execute(delete(Batch))
