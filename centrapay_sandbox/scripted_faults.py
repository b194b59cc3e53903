"""``POST /_sandbox/faults``: plan the next faults of one endpoint, for exact tests.

Random fault shares show that recovery works on average; a scripted fault shows one case
exactly (the answer to this load is lost, then that transfer's), whatever else runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from centrapay_sandbox.deps import SandboxDep
from centrapay_sandbox.faults import Fault, ScriptedFault

router = APIRouter(prefix="/_sandbox")


class FaultPlan(BaseModel):
    """``count`` faults of kind ``fault`` for the next ``method`` requests under ``path``."""

    method: str = Field(pattern="^(GET|POST|PATCH|PUT|DELETE)$")
    path: str = Field(pattern="^/api/", max_length=500)
    fault: Fault
    count: int = Field(default=1, ge=1, le=1000)


@router.post("/faults")
async def plan_faults(plan: FaultPlan, sandbox: SandboxDep) -> dict[str, Any]:
    """Add faults to the script; the answer lists every fault still planned."""
    planned = ScriptedFault(method=plan.method, path=plan.path, fault=plan.fault)
    sandbox.faults.scripted.extend([planned] * plan.count)
    return {"planned": [_view(item) for item in sandbox.faults.scripted]}


@router.get("/faults")
async def read_faults(sandbox: SandboxDep) -> dict[str, Any]:
    """The faults still planned, in the order they will be used."""
    return {"planned": [_view(item) for item in sandbox.faults.scripted]}


def _view(planned: ScriptedFault) -> dict[str, str]:
    return {"method": planned.method, "path": planned.path, "fault": planned.fault.value}
