"""Driving a run: wait for the batch to settle while firing the planned faults as progress
passes them, restarting processes that die on their own, noting stalls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distributor.config import Settings
from distributor.constants import UNSETTLED_STATES, RowState
from tests.chaos.batch import rows_by_state
from tests.chaos.faults import Planned
from tests.chaos.measure import EventLog, Timeline
from tests.chaos.processes import Services

POLL_SECONDS = 0.2
STALL_SECONDS = 45.0
PROGRESS_SAMPLE_SECONDS = 5.0


@dataclass(kw_only=True)
class Phase:
    """How one wait for the batch to settle went."""

    counts: dict[str, int]
    settled: bool
    seconds: float
    fired: list[str]
    skipped: list[str]


def drive(
    settings: Settings,
    batch_id: int,
    *,
    total: int,
    schedule: list[Planned],
    actions: dict[str, Callable[[], None]],
    services: Services,
    events: EventLog,
    timeout: float,
    min_gap: float,
    give_up_after_stall: float,
    progress: list[dict[str, Any]] | None = None,
    timeline: Timeline | None = None,
    gate: Callable[[str], dict[str, Any] | None] | None = None,
    gate_wait: float = 0.0,
) -> Phase:
    """Wait until the batch settles, firing the schedule's faults as progress passes them,
    restarting processes that died, noting stalls. Never raises on a timeout or a stall:
    the audit says what was left.

    ``gate(kind)``, when given, holds a due fault back until it returns details of the
    moment (a dict), for at most ``gate_wait`` seconds."""
    started = time.monotonic()
    pending = list(schedule)
    fired: list[str] = []
    last_fired = 0.0
    last_change = time.monotonic()
    last_counts: dict[str, int] = {}
    stalled = False
    last_sample = 0.0
    due_since: float | None = None
    while True:
        services.supervise()
        counts = rows_by_state(settings, batch_id)
        done = counts.get(RowState.SENT, 0) + counts.get(RowState.FAILED, 0)
        settled = not any(counts.get(state, 0) for state in UNSETTLED_STATES)
        now = time.monotonic()
        if timeline is not None:
            timeline.add(events.elapsed(), done)
        if progress is not None and (now - last_sample >= PROGRESS_SAMPLE_SECONDS or settled):
            last_sample = now
            progress.append({"t": round(events.elapsed(), 1), **counts})
        if counts != last_counts:
            last_counts, last_change, stalled = counts, now, False
        elif not settled and not stalled and now - last_change > STALL_SECONDS:
            stalled = True
            events.add("no progress", seconds=round(now - last_change), counts=counts)
        due = pending and not settled and done / total >= pending[0].at_progress
        if due and now - last_fired >= min_gap:
            due_since = now if due_since is None else due_since
            moment = gate(pending[0].kind) if gate else {}
            if moment is None and now - due_since >= gate_wait:
                moment = {"gate": "waited in vain"}
            if moment is not None:
                planned = pending.pop(0)
                due_since = None
                events.add(
                    f"fire {planned.kind}",
                    progress=round(done / total, 3),
                    counts=counts,
                    **moment,
                )
                actions[planned.kind]()
                fired.append(planned.kind)
                last_fired = time.monotonic()
                continue
        if settled:
            skipped = [p.kind for p in pending]
            if skipped:
                events.add("batch settled before these faults fired", skipped=skipped)
            return Phase(
                counts=counts, settled=True, seconds=now - started, fired=fired, skipped=skipped
            )
        stuck = now - last_change > give_up_after_stall
        if now - started > timeout or stuck:
            events.add("gave up waiting", counts=counts, stuck=stuck)
            return Phase(
                counts=counts,
                settled=False,
                seconds=now - started,
                fired=fired,
                skipped=[p.kind for p in pending],
            )
        time.sleep(POLL_SECONDS)
