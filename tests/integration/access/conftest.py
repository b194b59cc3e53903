"""Users of every role, clients logged in as them, and a CSV to upload."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from distributor.access.actors import BOOTSTRAP
from distributor.config import Settings
from distributor.constants import ROLE_ORDER, Role
from distributor.db import session_scope
from distributor.operator_actions import add_user
from distributor.pipeline.clock import utcnow

APPROVAL_ABOVE_ROWS = 2
"""Here a batch of more than two rows to send waits for an approver."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings, with four-eyes approval above two rows."""
    return settings.model_copy(update={"approval_required_above_rows": APPROVAL_ABOVE_ROWS})


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    """A user per role, named after it (and a second approver, ``approver2``): their tokens."""
    with session_scope(settings.database_url) as session:
        made = {
            role.value: add_user(session, BOOTSTRAP, name=role.value, role=role, now=utcnow())
            for role in ROLE_ORDER
        }
        made["approver2"] = add_user(
            session, BOOTSTRAP, name="approver2", role=Role.APPROVER, now=utcnow()
        )
    return made


@pytest.fixture
def client_for(base_url: str, tokens: dict[str, str]) -> Iterator[Callable[[str], httpx.Client]]:
    """A client logged in as the named user."""
    clients: list[httpx.Client] = []

    def make(name: str) -> httpx.Client:
        client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {tokens[name]}"}
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
