"""FastAPI dependencies of the sandbox's routes."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from centrapay_sandbox.gate import ACCOUNT_SCOPE_KEY
from centrapay_sandbox.runtime import Sandbox


def get_sandbox(request: Request) -> Sandbox:
    """The sandbox the app serves."""
    return cast(Sandbox, request.app.state.sandbox)


def get_account_id(request: Request) -> str:
    """The account of the request's API key, put there by the gate."""
    return cast(str, request.scope[ACCOUNT_SCOPE_KEY])


SandboxDep = Annotated[Sandbox, Depends(get_sandbox)]
AccountDep = Annotated[str, Depends(get_account_id)]
