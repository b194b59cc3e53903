"""FastAPI dependencies: settings, a database session per request, the token check."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.db import session_scope

bearer = HTTPBearer(auto_error=False)

ID_MAX = 2**63 - 1
"""The largest id the database can hold (a Postgres bigint); a larger one is refused (422)
before it reaches a query, where Postgres would fail on it."""

BatchId = Annotated[int, Path(ge=1, le=ID_MAX, description="the batch's id")]


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """A session committed at the end of the request, rolled back on error."""
    with session_scope(settings.database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def token_is_valid(settings: Settings, token: str) -> bool:
    """True when ``token`` is one of DISTRIBUTOR_API_TOKENS (constant-time compare)."""
    return any(
        hmac.compare_digest(token.encode(), known.encode())
        for known in settings.distributor_api_tokens
    )


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <one of the API tokens>``."""
    if credentials is None or not token_is_valid(settings, credentials.credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong API token",
            headers={"WWW-Authenticate": "Bearer"},
        )


Authorized = Depends(require_token)


def get_dispatcher(request: Request) -> Callable[[int], None]:
    """How this app hands a started batch to the workers."""
    dispatcher: Callable[[int], None] = request.app.state.dispatch
    return dispatcher


DispatchDep = Annotated[Callable[[int], None], Depends(get_dispatcher)]
