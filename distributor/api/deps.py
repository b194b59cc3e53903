"""FastAPI dependencies: settings, a database session per request, who is calling.

The dashboard logs a browser in with HTTP basic auth, the API token as the password
(``dashboard_login``). Because a browser replays basic credentials on any request to this
site, even one a hostile page makes it send, every dashboard form carries a token derived
with HMAC from the API token and the time it was issued: a POST without a fresh one is
refused (403, ``checked_form``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Path, Request, status
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
RowId = Annotated[int, Path(ge=1, le=ID_MAX, description="the row's id")]
BASIC_CHALLENGE = 'Basic realm="distributor", charset="UTF-8"'
FORM_TOKEN_TTL_SECONDS = 8 * 3600
"""How long a page's form token is accepted: a page left open longer must be reloaded."""


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


def _basic_password(credentials: str) -> str | None:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, colon, password = decoded.partition(":")
    return password if colon else None


@dataclass(frozen=True, kw_only=True)
class Login:
    """Who the browser is logged in as, and the token it logged in with (forms are bound to it)."""

    actor: Actor
    token: str


def dashboard_login(request: Request, session: SessionDep, settings: SettingsDep) -> Login:
    """The caller, by a Bearer token or the basic-auth password; 401 if none, wrong or disabled."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token: str | None = None
    if scheme.lower() == "bearer":
        token = credentials.strip()
    elif scheme.lower() == "basic":
        token = _basic_password(credentials.strip())
    actor = resolve_actor(session, settings, token)
    if token is None or actor is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="log in with your API token as the password",
            headers={"WWW-Authenticate": BASIC_CHALLENGE},
        )
    return Login(actor=actor, token=token)


LoginDep = Annotated[Login, Depends(dashboard_login)]


def _form_mac(settings: Settings, api_token: str, issued: int) -> str:
    secret = settings.distributor_secret_key
    key = secret.get_secret_value().encode() if secret is not None else b""
    message = f"dashboard-form|{issued}|{api_token}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def form_token(settings: Settings, api_token: str, *, now: float) -> str:
    """A token for the forms of one page: its issue time and an HMAC of it and the API token."""
    issued = int(now)
    return f"{issued}.{_form_mac(settings, api_token, issued)}"


def form_token_is_valid(settings: Settings, api_token: str, candidate: str, *, now: float) -> bool:
    """True for a token made by ``form_token`` for this API token, not older than its TTL."""
    issued_text, _, mac = candidate.partition(".")
    if not issued_text.isdigit() or not 0 <= now - int(issued_text) <= FORM_TOKEN_TTL_SECONDS:
        return False
    return hmac.compare_digest(mac, _form_mac(settings, api_token, int(issued_text)))


def checked_form(
    settings: SettingsDep, login: LoginDep, csrf_token: Annotated[str, Form()] = ""
) -> None:
    """403 unless the posted form carries a fresh token issued for this API token."""
    if not form_token_is_valid(settings, login.token, csrf_token, now=time.time()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="this form is stale or did not come from the dashboard; reload the page",
        )


CheckedForm = Depends(checked_form)
