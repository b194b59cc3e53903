"""Schemathesis over the API's own OpenAPI schema, served for real: whatever it sends to
any operation, with the token, the answer is never a server error.

Bounded and deterministic: a fixed number of examples per operation, derandomized, no
example database, requests to 127.0.0.1 only.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema

from distributor.api.app import create_app
from distributor.config import Settings
from tests.integration.hardening.hardening_helpers import AUTH

EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def api_schema(base_url: str, limited_settings: Settings) -> BaseSchema:
    """The schema the served app publishes, aimed at it with the token."""
    published = httpx.get(f"{base_url}/openapi.json").json()
    assert published == create_app(limited_settings, dispatch=lambda _id: None).openapi()
    schema = schemathesis.openapi.from_dict(published)
    schema.config.update(base_url=base_url, headers=dict(AUTH))
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES_PER_OPERATION,
        deterministic=True,
        database="none",
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_schema_allows_or_almost_allows_is_a_server_error(case: Any) -> None:
    case.call_and_validate(checks=[not_a_server_error], timeout=30)
