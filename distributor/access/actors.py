"""The acting user and what each role may do, decided once in one table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from distributor.constants import BOOTSTRAP_USER, ROLE_ORDER, Role
from distributor.errors import Forbidden


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who is acting: a user of the users table, or the bootstrap admin."""

    name: str
    role: Role
    bootstrap: bool = False


BOOTSTRAP = Actor(name=BOOTSTRAP_USER, role=Role.ADMIN, bootstrap=True)
"""A token of DISTRIBUTOR_API_TOKENS, or the CLI without DISTRIBUTOR_USER or --as."""


class Action(StrEnum):
    """Everything a user can do; an audited action's value is its name in the audit trail."""

    READ = "read"
    UPLOAD = "upload"
    APPROVE = "approve"
    REJECT = "reject"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"
    RESEND = "resend"
    RECLAIM = "reclaim"
    REPORT_DOWNLOAD = "report.download"
    USERS_LIST = "users.list"
    USER_ADD = "user.add"
    USER_DISABLE = "user.disable"
    USER_ROTATE_TOKEN = "user.rotate_token"  # noqa: S105 (an action name, not a secret)
    KEYS_ROTATE = "keys.rotate"


MINIMUM_ROLE: dict[Action, Role] = {
    Action.READ: Role.VIEWER,
    Action.REPORT_DOWNLOAD: Role.VIEWER,
    Action.UPLOAD: Role.OPERATOR,
    Action.START: Role.OPERATOR,
    Action.PAUSE: Role.OPERATOR,
    Action.RESUME: Role.OPERATOR,
    Action.CANCEL: Role.OPERATOR,
    Action.RETRY: Role.OPERATOR,
    Action.RESEND: Role.OPERATOR,
    Action.RECLAIM: Role.OPERATOR,
    Action.APPROVE: Role.APPROVER,
    Action.REJECT: Role.APPROVER,
    Action.USERS_LIST: Role.ADMIN,
    Action.USER_ADD: Role.ADMIN,
    Action.USER_DISABLE: Role.ADMIN,
    Action.USER_ROTATE_TOKEN: Role.ADMIN,
    Action.KEYS_ROTATE: Role.ADMIN,
}


def allows(actor: Actor, action: Action) -> bool:
    """True when the actor's role is at least the one ``action`` needs."""
    return ROLE_ORDER.index(actor.role) >= ROLE_ORDER.index(MINIMUM_ROLE[action])


def require(actor: Actor, action: Action) -> None:
    """Forbidden, naming the role needed, unless the actor may do ``action``."""
    if not allows(actor, action):
        needed = MINIMUM_ROLE[action]
        raise Forbidden(
            f"{actor.name} ({actor.role}) may not {action}: it needs the {needed} role or above"
        )
