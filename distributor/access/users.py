"""Users and their tokens: only a token's SHA-256 is stored, the token is shown once.

Tokens are 32 random bytes (``secrets.token_urlsafe``): with that much entropy a plain
SHA-256 cannot be reversed or guessed, so a slow password hash would add nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.access.actors import BOOTSTRAP, Actor
from distributor.constants import BOOTSTRAP_USER, USER_NAME_MAX_CHARS, Role
from distributor.errors import Conflict, Forbidden, NotFound
from distributor.models import User

TOKEN_BYTES = 32
NAME_PATTERN = re.compile(rf"[A-Za-z0-9._@-]{{1,{USER_NAME_MAX_CHARS}}}")


def token_hash(token: str) -> str:
    """The SHA-256 of a token, hex: what the users table keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise Conflict(
            f"a user name is 1 to {USER_NAME_MAX_CHARS} letters, digits or . _ @ -, not {name!r}"
        )
    if name == BOOTSTRAP_USER:
        raise Conflict(f"{BOOTSTRAP_USER!r} is reserved for the DISTRIBUTOR_API_TOKENS admin")


def get_user(session: Session, name: str) -> User:
    """The user called ``name``; NotFound if none."""
    user = session.scalars(select(User).where(User.name == name)).one_or_none()
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def add_user(session: Session, *, name: str, role: Role, now: datetime) -> str:
    """Create a user; returns their token, which is stored nowhere."""
    _check_name(name)
    if session.scalars(select(User.id).where(User.name == name)).first() is not None:
        raise Conflict(f"user {name!r} already exists")
    token, digest = _new_token()
    session.add(User(name=name, role=role, token_hash=digest, created_at=now))
    session.flush()
    return token


def list_users(session: Session) -> Sequence[User]:
    """Every user, by name."""
    return session.scalars(select(User).order_by(User.name)).all()


def disable_user(session: Session, *, name: str, now: datetime) -> None:
    """Refuse the user's token from now on (the user and what they did stay)."""
    user = get_user(session, name)
    if user.disabled_at is None:
        user.disabled_at = now


def rotate_token(session: Session, *, name: str, now: datetime) -> str:
    """Give the user a new token, the old one refused from now on; returns the new one."""
    user = get_user(session, name)
    if user.disabled_at is not None:
        raise Conflict(f"user {name!r} is disabled")
    token, user.token_hash = _new_token()
    user.token_rotated_at = now
    return token


def actor_for_token(
    session: Session, *, token: str, bootstrap_tokens: Sequence[str]
) -> Actor | None:
    """Who ``token`` belongs to: a bootstrap token, or an enabled user's; None otherwise."""
    presented = token.encode()
    if any(hmac.compare_digest(presented, known.encode()) for known in bootstrap_tokens):
        return BOOTSTRAP
    digest = token_hash(token)
    user = session.scalars(select(User).where(User.token_hash == digest)).one_or_none()
    if user is None or user.disabled_at is not None:
        return None
    if not hmac.compare_digest(user.token_hash.encode(), digest.encode()):
        return None
    return Actor(name=user.name, role=Role(user.role))


def actor_named(session: Session, name: str) -> Actor:
    """The user ``name`` as an actor (the CLI's DISTRIBUTOR_USER or --as)."""
    user = get_user(session, name)
    if user.disabled_at is not None:
        raise Forbidden(f"user {name!r} is disabled")
    return Actor(name=user.name, role=Role(user.role))
