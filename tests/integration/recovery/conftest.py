"""Recovery tests run real worker and beat processes (the acceptance fixtures) against a
real sandbox, Postgres and Redis, and break one of them on purpose."""

from __future__ import annotations

from tests.acceptance.conftest import pipeline_settings, start_service

__all__ = ["pipeline_settings", "start_service"]
