"""Injected faults: added latency and shares of requests that fail in one of four ways.

- ``429``: answered 429 RATE_LIMIT_EXCEEDED, not applied.
- ``5xx``: answered 500, 502 or 503, not applied.
- ``timeout``: applied, then the answer is withheld for ``timeout_hold_seconds`` (or until
  the client gives up) and a 504 is sent if the client is still there.
- ``drop``: applied, then the connection is closed without any HTTP answer.

Only ``/api`` routes are affected; the control routes never are. Besides the random
shares, a test can script the next fault for one endpoint (``POST /_sandbox/faults``):
scripted faults come first, in order, each used once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum


class Fault(StrEnum):
    """The kind of fault chosen for one request."""

    TOO_MANY = "429"
    SERVER_ERROR = "5xx"
    TIMEOUT = "timeout"
    DROP = "drop"


SERVER_ERROR_STATUSES = (500, 502, 503)


REFUSALS = (Fault.TOO_MANY, Fault.SERVER_ERROR)
"""Faults that refuse a request before it is applied; the others lose its answer."""


@dataclass(frozen=True, kw_only=True)
class ScriptedFault:
    """One fault planned for the next request of ``method`` to a path under ``path``."""

    method: str
    path: str
    fault: Fault


@dataclass(kw_only=True)
class FaultConfig:
    """The current fault settings; changed at run time through ``PATCH /_sandbox/config``."""

    latency_ms: float = 0.0
    fault_429: float = 0.0
    fault_5xx: float = 0.0
    fault_timeout: float = 0.0
    fault_drop: float = 0.0
    timeout_hold_seconds: float = 30.0
    scripted: list[ScriptedFault] = field(default_factory=list)

    def take_scripted(self, method: str, path: str) -> Fault | None:
        """The first scripted fault for this request, used up; None when none is left."""
        for index, planned in enumerate(self.scripted):
            if planned.method == method and path.startswith(planned.path):
                del self.scripted[index]
                return planned.fault
        return None

    def before(self) -> Fault | None:
        """Roll the faults that refuse a request before it is applied."""
        if self.fault_429 and random.random() < self.fault_429:
            return Fault.TOO_MANY
        if self.fault_5xx and random.random() < self.fault_5xx:
            return Fault.SERVER_ERROR
        return None

    def after(self) -> Fault | None:
        """Roll the faults that lose the answer of a request that is applied."""
        if self.fault_timeout and random.random() < self.fault_timeout:
            return Fault.TIMEOUT
        if self.fault_drop and random.random() < self.fault_drop:
            return Fault.DROP
        return None


def server_error_status() -> int:
    """The status of an injected 5xx answer."""
    return random.choice(SERVER_ERROR_STATUSES)
