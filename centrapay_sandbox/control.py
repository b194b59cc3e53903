"""Control routes (``/_sandbox/...``) for tests and operators: config, ledger, accounts
(and their history), clock, reset. They need no API key: the sandbox listens on loopback
only by default.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from centrapay_sandbox import problems
from centrapay_sandbox.clock import iso
from centrapay_sandbox.deps import SandboxDep
from centrapay_sandbox.models import Account, Asset
from centrapay_sandbox.schemas import (
    AccountPatch,
    ClockAdvance,
    ConfigPatch,
    HistoryRequest,
)

router = APIRouter(prefix="/_sandbox")


@router.get("/health")
async def health() -> dict[str, str]:
    """The sandbox is up."""
    return {"status": "ok"}


@router.get("/config")
async def read_config(sandbox: SandboxDep) -> dict[str, Any]:
    """The run-time knobs: latency, rate limit, fault shares, clock speed."""
    return sandbox.config_view()


@router.patch("/config")
async def change_config(patch: ConfigPatch, sandbox: SandboxDep) -> dict[str, Any]:
    """Change some run-time knobs; the answer shows them all."""
    sandbox.configure(patch)
    return sandbox.config_view()


@router.get("/ledger")
async def read_ledger(sandbox: SandboxDep) -> dict[str, Any]:
    """Loads, repeated loads and transfers per card number; most loads of one card."""
    return sandbox.ledger.summary()


@router.get("/ledger/cards/{card_number}")
async def read_card(card_number: str, sandbox: SandboxDep) -> dict[str, Any]:
    """One card's counts (zeros for a card never seen)."""
    return {"cardNumber": card_number, **sandbox.ledger.card(card_number)}


@router.get("/ledger/requests")
async def read_requests(
    sandbox: SandboxDep, limit: Annotated[int | None, Query(ge=0)] = None
) -> dict[str, Any]:
    """Every ``/api`` request received, oldest first (the newest ``limit`` if given)."""
    return {"items": sandbox.ledger.requests(limit=limit)}


@router.get("/accounts/{account_id}")
async def read_account(account_id: str, sandbox: SandboxDep) -> dict[str, Any]:
    """An account's wallet and spend quota."""
    found = sandbox.store.account(account_id)
    if found is None:
        raise problems.ApiProblem(404, problems.ACCOUNT_NOT_FOUND)
    return _account_view(*found)


@router.patch("/accounts/{account_id}")
async def change_account(
    account_id: str, patch: AccountPatch, sandbox: SandboxDep
) -> dict[str, Any]:
    """Top up the wallet or change the spend quota, so refused transfers may succeed."""
    found = sandbox.store.update_account(
        account_id,
        wallet_balance=_cents(patch.walletBalance),
        quota_limit=_cents(patch.spendQuotaLimit),
        quota_usage=_cents(patch.spendQuotaUsage),
    )
    if found is None:
        raise problems.ApiProblem(404, problems.ACCOUNT_NOT_FOUND)
    return _account_view(*found)


@router.post("/accounts/{account_id}/history")
async def add_history(account_id: str, body: HistoryRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """Give the account many earlier loaded-and-transferred cards at once (not logged)."""
    made = sandbox.store.add_history(account_id, transfers=body.transfers, claimed=body.claimed)
    if not body.claimed:
        for transfer in made:
            sandbox.lifecycle.started(transfer)
    return {"accountId": account_id, "transfers": len(made), "claimed": body.claimed}


@router.get("/accounts/{account_id}/transfers")
async def read_sent_transfers(account_id: str, sandbox: SandboxDep) -> dict[str, Any]:
    """Every transfer the account sent, oldest first, with its card number: for checks."""
    items = [
        {"id": t.id, "assetId": t.asset_id, "cardNumber": card, "status": t.status.value}
        for t, card in sandbox.store.sent_transfers(account_id)
    ]
    return {"items": items}


@router.get("/clock")
async def read_clock(sandbox: SandboxDep) -> dict[str, Any]:
    """The simulated time and how fast it runs."""
    return {"now": iso(sandbox.clock.now()), "timeScale": sandbox.clock.scale}


@router.post("/clock/advance")
async def advance_clock(body: ClockAdvance, sandbox: SandboxDep) -> dict[str, Any]:
    """Jump the simulated time forward and apply the transfer changes now due."""
    sandbox.clock.advance(body.seconds)
    sandbox.lifecycle.tick()
    return {"now": iso(sandbox.clock.now()), "timeScale": sandbox.clock.scale}


@router.post("/reset")
async def reset(sandbox: SandboxDep) -> dict[str, str]:
    """Forget all assets, transfers and the ledger; settings back to the start."""
    sandbox.reset()
    return {"status": "reset"}


def _cents(text: str | None) -> int | None:
    return None if text is None else int(text)


def _account_view(account: Account, wallet: Asset) -> dict[str, Any]:
    return {
        "accountId": account.id,
        "walletId": wallet.id,
        "walletBalance": str(wallet.balance),
        "spendQuotaLimit": str(account.quota_limit),
        "spendQuotaUsage": str(account.quota_usage),
    }
