"""One running sandbox: its settings, state, ledger, clock, limiter, faults and lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from centrapay_sandbox.catalogue import Catalogue
from centrapay_sandbox.clock import SimClock
from centrapay_sandbox.config import SandboxSettings
from centrapay_sandbox.errors import ConfigError
from centrapay_sandbox.faults import FaultConfig
from centrapay_sandbox.ledger import Ledger
from centrapay_sandbox.lifecycle import Lifecycle
from centrapay_sandbox.paging import ListOrder
from centrapay_sandbox.ratelimit import RateLimiter
from centrapay_sandbox.schemas import ConfigPatch
from centrapay_sandbox.state import Store
from centrapay_sandbox.webhooks import Webhooks

V = TypeVar("V")


def parse_api_keys(entries: list[str]) -> dict[str, str]:
    """``["key:accountId", ...]`` -> ``{key: accountId}``; ConfigError on a malformed entry."""
    keys: dict[str, str] = {}
    for entry in entries:
        key, _, account_id = entry.partition(":")
        if not key or not account_id:
            raise ConfigError("setting SANDBOX_API_KEYS is invalid: entries are key:accountId")
        keys[key] = account_id
    return keys


def initial_faults(settings: SandboxSettings) -> FaultConfig:
    """The fault settings a sandbox starts (and resets) with."""
    return FaultConfig(
        latency_ms=settings.latency_ms,
        fault_429=settings.fault_429,
        fault_5xx=settings.fault_5xx,
        fault_timeout=settings.fault_timeout,
        fault_drop=settings.fault_drop,
        timeout_hold_seconds=settings.timeout_hold_seconds,
    )


@dataclass(kw_only=True)
class Sandbox:
    """Everything one sandbox server holds; the routes and the gate share it."""

    settings: SandboxSettings
    keys: dict[str, str]
    catalogue: Catalogue
    clock: SimClock
    ledger: Ledger
    store: Store
    limiter: RateLimiter
    faults: FaultConfig
    webhooks: Webhooks
    lifecycle: Lifecycle

    def reset(self) -> None:
        """Back to how the sandbox started: state, ledger, clock, limits and faults."""
        self.webhooks.cancel()
        self.lifecycle.reset()
        self.clock.reset(self.settings.time_scale)
        self.ledger.reset()
        self.store.reset()
        self.limiter.configure(rate=self.settings.rate_limit, burst=self.settings.rate_burst)
        self.faults = initial_faults(self.settings)
        self.store.list_order = ListOrder(self.settings.list_order)
        self.store.single_call = self.settings.single_call

    def configure(self, patch: ConfigPatch) -> None:
        """Change the run-time knobs given in ``patch``; the others stay as they are."""
        faults = self.faults
        faults.latency_ms = _pick(patch.latencyMs, faults.latency_ms)
        faults.fault_429 = _pick(patch.fault429, faults.fault_429)
        faults.fault_5xx = _pick(patch.fault5xx, faults.fault_5xx)
        faults.fault_timeout = _pick(patch.faultTimeout, faults.fault_timeout)
        faults.fault_drop = _pick(patch.faultDrop, faults.fault_drop)
        faults.timeout_hold_seconds = _pick(patch.timeoutHoldSeconds, faults.timeout_hold_seconds)
        if patch.rateLimit is not None or patch.rateBurst is not None:
            self.limiter.configure(
                rate=_pick(patch.rateLimit, self.limiter.rate),
                burst=_pick(patch.rateBurst, self.limiter.burst),
            )
        if patch.timeScale is not None:
            self.clock.set_scale(patch.timeScale)
        if patch.listOrder is not None:
            self.store.list_order = ListOrder(patch.listOrder)
        if patch.singleCall is not None:
            self.store.single_call = patch.singleCall

    def config_view(self) -> dict[str, Any]:
        """The run-time knobs, as ``GET /_sandbox/config`` shows them."""
        faults = self.faults
        return {
            "latencyMs": faults.latency_ms,
            "rateLimit": self.limiter.rate,
            "rateBurst": self.limiter.burst,
            "fault429": faults.fault_429,
            "fault5xx": faults.fault_5xx,
            "faultTimeout": faults.fault_timeout,
            "faultDrop": faults.fault_drop,
            "timeoutHoldSeconds": faults.timeout_hold_seconds,
            "timeScale": self.clock.scale,
            "listOrder": self.store.list_order.value,
            "singleCall": self.store.single_call,
        }


def _pick(new: V | None, current: V) -> V:
    return current if new is None else new


def build_sandbox(settings: SandboxSettings) -> Sandbox:
    """A fresh sandbox from its settings; ConfigError for bad keys or a bad catalogue."""
    keys = parse_api_keys(settings.api_keys)
    catalogue = Catalogue.from_file(settings.cards) if settings.cards else Catalogue()
    clock = SimClock(settings.time_scale)
    ledger = Ledger()
    store = Store(
        account_ids=sorted(set(keys.values())),
        catalogue=catalogue,
        ledger=ledger,
        clock=clock,
        page_size=settings.page_size,
        list_order=ListOrder(settings.list_order),
        single_call=settings.single_call,
    )
    webhooks = Webhooks()
    return Sandbox(
        settings=settings,
        keys=keys,
        catalogue=catalogue,
        clock=clock,
        ledger=ledger,
        store=store,
        limiter=RateLimiter(rate=settings.rate_limit, burst=settings.rate_burst),
        faults=initial_faults(settings),
        webhooks=webhooks,
        lifecycle=Lifecycle(store=store, clock=clock, webhooks=webhooks),
    )
