"""Whether a row goes out in one call (seed 004's load with ``assetTransfer``) or two.

One call is the default (``CENTRAPAY_SINGLE_CALL``). Centrapay's current public docs no
longer show ``assetTransfer``; an account where it is not enabled answers 400 naming the
field. That answer is recorded for the account in Postgres (``centrapay_accounts``), said
once in the log and on every running batch (its ``notice``), and every process sends in
two calls from then on. No row fails for it: the row is simply sent again in two steps.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from distributor.constants import BatchState
from distributor.db import session_scope
from distributor.errors import CentrapayBadRequest
from distributor.models import Batch, CentrapayAccount
from distributor.pipeline.accounts import upsert_account

logger = logging.getLogger(__name__)

SINGLE_CALL_FIELD = "assetTransfer"
TWO_STEP_NOTICE = (
    "Centrapay refused load-and-transfer in one call (assetTransfer) for this account: "
    "rows are sent in two calls (load, then transfer)"
)


def refuses_single_call(error: CentrapayBadRequest) -> bool:
    """True for the 400 an account without the single call answers: it names the field."""
    return SINGLE_CALL_FIELD in str(error)


class SingleCall:
    """The one-call switch of one account, shared by a process's threads."""

    def __init__(self, *, enabled: bool, database_url: str, account_id: str) -> None:
        self._enabled = enabled
        self._database_url = database_url
        self._account_id = account_id
        self._refused: bool | None = None
        self._lock = threading.Lock()

    def wanted(self) -> bool:
        """True when rows should go out in one call."""
        if not self._enabled:
            return False
        with self._lock:
            if self._refused is None:
                with session_scope(self._database_url) as session:
                    refused_at = session.scalar(
                        select(CentrapayAccount.single_call_refused_at).where(
                            CentrapayAccount.account_id == self._account_id
                        )
                    )
                    self._refused = refused_at is not None
                    if self._refused:
                        _tell_running_batches(session)
            return not self._refused

    def refused(self, *, now: datetime) -> None:
        """Centrapay refused the field: two calls from now on, for every process."""
        with self._lock:
            first = not self._refused
            self._refused = True
        with session_scope(self._database_url) as session:
            upsert_account(session, self._account_id, single_call_refused_at=now)
            _tell_running_batches(session)
        if first:
            logger.warning("%s", TWO_STEP_NOTICE)


def _tell_running_batches(session: Session) -> None:
    session.execute(
        update(Batch)
        .where(Batch.state.in_([BatchState.RUNNING, BatchState.QUEUED]), Batch.notice.is_(None))
        .values(notice=TWO_STEP_NOTICE)
        .execution_options(synchronize_session=False)
    )
