"""What the row steps need, built once per worker process."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta

from distributor.answer_log import AnswerLog
from distributor.centrapay.client import CentrapayClient
from distributor.config import Settings
from distributor.pipeline.leases import LeaseKeeper
from distributor.pipeline.outcomes import RetryPolicy
from distributor.pipeline.single_call import SingleCall
from distributor.ratelimit import TokenBucket
from distributor.vault import Vault, vault_from_settings


@dataclass(frozen=True, kw_only=True)
class PipelineContext:
    """Database, secrets, Centrapay client and policies shared by a process's row tasks."""

    database_url: str
    vault: Vault
    client: CentrapayClient
    policy: RetryPolicy
    lease: timedelta
    leases: LeaseKeeper
    single_call: SingleCall
    notify_url: str | None
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the process is shutting down: rows finish their step, then go back."""

    def close(self) -> None:
        """Stop renewing leases; release the HTTP connections; write the last answer counts."""
        self.leases.close()
        self.client.close()


def build_context(
    settings: Settings, *, bucket: TokenBucket, base_url: str, answers: AnswerLog | None = None
) -> PipelineContext:
    """A context for ``settings``, calling Centrapay at ``base_url`` through ``bucket``,
    counting each answer in ``answers`` (None: no answer log, as in standalone mode)."""
    settings.require("centrapay_api_key", "centrapay_account_id", "distributor_secret_key")
    assert settings.centrapay_api_key is not None and settings.centrapay_account_id is not None
    client = CentrapayClient(
        base_url=base_url,
        api_key=settings.centrapay_api_key.get_secret_value(),
        account_id=settings.centrapay_account_id,
        bucket=bucket,
        timeout_seconds=settings.centrapay_timeout_seconds,
        token_wait_max_seconds=settings.token_wait_max_seconds,
        max_connections=settings.worker_concurrency * 2,
        answers=answers,
    )
    lease = timedelta(seconds=settings.lease_seconds)
    return PipelineContext(
        database_url=settings.database_url,
        vault=vault_from_settings(settings),
        client=client,
        policy=RetryPolicy(
            max_retries=settings.max_auto_retries,
            base_seconds=settings.retry_backoff_seconds,
            max_seconds=settings.retry_backoff_max_seconds,
        ),
        lease=lease,
        leases=LeaseKeeper(database_url=settings.database_url, lease=lease),
        single_call=SingleCall(
            enabled=settings.centrapay_single_call,
            database_url=settings.database_url,
            account_id=settings.centrapay_account_id,
        ),
        notify_url=settings.centrapay_notify_url,
    )
