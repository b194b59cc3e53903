"""What the service keeps per Centrapay account (``centrapay_accounts``): whether it
refused the single call, and where the transfer-id sync stands in its listing."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from distributor.models import CentrapayAccount


def upsert_insert(session: Session, model: type[Any]) -> Any:
    """An INSERT of ``model`` that can take ON CONFLICT, on Postgres and SQLite alike."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def upsert_account(session: Session, account_id: str, **values: object) -> None:
    """Insert or update the account's row."""
    statement = upsert_insert(session, CentrapayAccount).values(account_id=account_id, **values)
    if values:
        statement = statement.on_conflict_do_update(index_elements=["account_id"], set_=values)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["account_id"])
    session.execute(statement)
