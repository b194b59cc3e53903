"""The transfer-id sync when its process dies mid-walk, or when two processes run it at once.

Each case runs a sync in a child process against a slow sandbox, so it is caught between
two pages: killed there, or still walking while another sync starts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from centrapay_sandbox.server import SandboxHandle
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import SentTransfer
from distributor.pipeline.context import PipelineContext, build_context
from distributor.pipeline.transfer_ids import sync_transfer_ids
from distributor.ratelimit.local import LocalTokenBucket
from tests.integration.pipeline.recovery_helpers import (
    load_out_of_band,
    read_row,
    set_row,
    stored_row,
)
from tests.processes import service_env

SLOW_PAGE_MS = 500.0
"""The sandbox's latency while the child syncs: time to catch it between two pages."""
PAGE_SIZE = 100
WAIT_SECONDS = 15.0

SYNC_IN_A_CHILD = """
from distributor.config import get_settings
from distributor.pipeline.context import build_context
from distributor.pipeline.transfer_ids import sync_transfer_ids
from distributor.ratelimit.local import LocalTokenBucket

settings = get_settings()
bucket = LocalTokenBucket(rate_per_second=1000, burst=100)
context = build_context(settings, bucket=bucket, base_url=settings.centrapay_base_url)
sync_transfer_ids(database_url=settings.database_url, client=context.client)
"""


@pytest.fixture
def ctx(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client
) -> Iterator[PipelineContext]:
    assert control.patch("/config", json={"listOrder": "newest"}).status_code == 200
    bucket = LocalTokenBucket(rate_per_second=1000, burst=100)
    context = build_context(settings, bucket=bucket, base_url=sandbox.base_url)
    yield context
    context.close()


def _pending_row(settings: Settings, ctx: PipelineContext, card: str) -> tuple[int, str]:
    """A row sent with its transfer id pending, its card sent through the sandbox."""
    loaded = load_out_of_band(ctx.client, card, transfer=True)
    assert loaded.transfer is not None
    row_id = stored_row(settings, card, state="sent")
    set_row(settings, row_id, asset_id=loaded.asset.id)
    return row_id, loaded.transfer.id


def _make_history(control: httpx.Client, transfers: int) -> None:
    made = control.post("/accounts/sandbox-account/history", json={"transfers": transfers})
    assert made.status_code == 200, made.text


def _mirrored(settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        return int(session.scalar(select(func.count()).select_from(SentTransfer)) or 0)


def _start_slow_sync(
    settings: Settings, sandbox: SandboxHandle, control: httpx.Client, *, once_mirrored: int
) -> subprocess.Popen[bytes]:
    """A sync in a child process on a slow sandbox, once it has mirrored that many."""
    assert control.patch("/config", json={"latencyMs": SLOW_PAGE_MS}).status_code == 200
    env = service_env(settings, CENTRAPAY_BASE_URL=sandbox.base_url)
    child = subprocess.Popen([sys.executable, "-c", SYNC_IN_A_CHILD], env=env)
    deadline = time.monotonic() + WAIT_SECONDS
    while _mirrored(settings) < once_mirrored:
        assert child.poll() is None, "the sync ended before it was caught between pages"
        assert time.monotonic() < deadline, "the sync stored no page"
        time.sleep(0.02)
    return child


def _stop(child: subprocess.Popen[bytes], control: httpx.Client) -> None:
    child.kill()
    child.wait(timeout=WAIT_SECONDS)
    assert control.patch("/config", json={"latencyMs": 0}).status_code == 200


def test_a_sync_killed_between_pages_leaves_no_page_unread(
    settings: Settings, ctx: PipelineContext, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    load_out_of_band(ctx.client, "23409500000", transfer=True)
    _pending_row(settings, ctx, "23409500001")
    _make_history(control, 150)
    first = sync_transfer_ids(database_url=settings.database_url, client=ctx.client)
    assert first.pending == 0  # the walk went down to the oldest row: its key is past them
    before = _mirrored(settings)
    row_id, transfer_id = _pending_row(settings, ctx, "23409500002")
    _make_history(control, 3 * PAGE_SIZE + 50)
    child = _start_slow_sync(settings, sandbox, control, once_mirrored=before + 2 * PAGE_SIZE)
    _stop(child, control)  # killed while it reads the third page; the row's is the fourth
    assert read_row(settings, row_id).transfer_id is None
    sync_transfer_ids(database_url=settings.database_url, client=ctx.client)
    assert read_row(settings, row_id).transfer_id == transfer_id


def test_a_sync_started_while_another_walks_the_listing_reads_nothing(
    settings: Settings, ctx: PipelineContext, sandbox: SandboxHandle, control: httpx.Client
) -> None:
    load_out_of_band(ctx.client, "23409500010", transfer=True)
    row_id, transfer_id = _pending_row(settings, ctx, "23409500011")
    _make_history(control, 3 * PAGE_SIZE)
    child = _start_slow_sync(settings, sandbox, control, once_mirrored=PAGE_SIZE)
    try:
        second = sync_transfer_ids(database_url=settings.database_url, client=ctx.client)
        assert (second.pages, second.resolved, second.pending) == (0, 0, 1)
    finally:
        _stop(child, control)
    assert sync_transfer_ids(database_url=settings.database_url, client=ctx.client).pending == 0
    assert read_row(settings, row_id).transfer_id == transfer_id
