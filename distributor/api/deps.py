"""FastAPI dependencies: settings, a database session per request, who is calling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from distributor.access.actors import Actor
from distributor.access.users import actor_for_token
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


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
"""Function-scoped: the commit runs when the route returns, before the response is sent
(a request-scoped one commits after it: a client could read what it just did as undone,
or be told 200 for a commit that then fails)."""


def resolve_actor(session: Session, settings: Settings, token: str | None) -> Actor | None:
    """Whose ``token`` is: an enabled user's, or a bootstrap admin's; None if nobody's."""
    if not token:
        return None
    return actor_for_token(session, token=token, bootstrap_tokens=settings.distributor_api_tokens)


def current_actor(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """401 unless the request carries ``Authorization: Bearer <token>`` of an enabled user
    (or one of DISTRIBUTOR_API_TOKENS); who it is otherwise. Roles are checked by each action."""
    actor = resolve_actor(session, settings, credentials.credentials if credentials else None)
    if actor is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing, wrong or disabled API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]
Authorized = Depends(current_actor)
"""For a router whose every route needs a caller, at least a viewer."""


def get_dispatcher(request: Request) -> Callable[[int], None]:
    """How this app hands a started batch to the workers."""
    dispatcher: Callable[[int], None] = request.app.state.dispatch
    return dispatcher


DispatchDep = Annotated[Callable[[int], None], Depends(get_dispatcher)]
