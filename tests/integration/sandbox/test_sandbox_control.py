"""The control routes: run-time config, the ledger, accounts, the clock, and reset."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.sandbox.sandbox_helpers import DOC_ACCOUNT, load

CARD = "60000000017"


def test_the_config_starts_from_the_settings_and_changes_at_run_time(
    control: httpx.Client,
) -> None:
    assert control.get("/_sandbox/config").json() == {
        "latencyMs": 0.0,
        "rateLimit": 0.0,
        "rateBurst": 5,
        "fault429": 0.0,
        "fault5xx": 0.0,
        "faultTimeout": 0.0,
        "faultDrop": 0.0,
        "timeoutHoldSeconds": 30.0,
        "timeScale": 1.0,
        "listOrder": "newest",
        "singleCall": True,
    }
    changed = control.patch("/_sandbox/config", json={"fault5xx": 0.25, "rateLimit": 50}).json()
    assert (changed["fault5xx"], changed["rateLimit"], changed["faultDrop"]) == (0.25, 50, 0)


@pytest.mark.parametrize(
    "patch", [{"fault5xx": 2}, {"rateLimit": -1}, {"timeScale": 0}, {"colour": "red"}]
)
def test_an_invalid_config_change_is_a_400(control: httpx.Client, patch: dict[str, float]) -> None:
    response = control.patch("/_sandbox/config", json=patch)
    assert response.status_code == 400
    assert control.get("/_sandbox/config").json()["fault5xx"] == 0


def test_the_ledger_counts_per_card_and_logs_every_api_request(
    api: httpx.Client, control: httpx.Client
) -> None:
    asset = load(api, CARD)
    load(api, CARD)
    api.post(
        "/api/asset-transfers", json={"assetId": asset["id"], "recipientAlias": "+64221231234"}
    )
    ledger = control.get("/_sandbox/ledger").json()
    assert ledger["cards"] == {CARD: {"loads": 1, "repeatLoads": 1, "transfers": 1}}
    assert (ledger["maxLoads"], ledger["requestCount"]) == (1, 3)
    requests = control.get("/_sandbox/ledger/requests").json()["items"]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("POST", "/api/external-assets", 200),
        ("POST", "/api/external-assets", 200),
        ("POST", "/api/asset-transfers", 200),
    ]
    assert all(r["at"].endswith("Z") and r["durationMs"] >= 0 for r in requests)
    assert len(control.get("/_sandbox/ledger/requests", params={"limit": 1}).json()["items"]) == 1


def test_reset_forgets_assets_and_the_ledger_and_restores_the_config(
    api: httpx.Client, control: httpx.Client
) -> None:
    load(api, CARD)
    control.patch("/_sandbox/config", json={"fault5xx": 0.5})
    control.post("/_sandbox/reset").raise_for_status()
    assert control.get("/_sandbox/ledger").json() == {"cards": {}, "maxLoads": 0, "requestCount": 0}
    assert control.get("/_sandbox/config").json()["fault5xx"] == 0
    items = api.get(f"/api/accounts/{DOC_ACCOUNT}/assets").json()["items"]
    assert [item["category"] for item in items] == ["money"]


def test_an_account_wallet_and_quota_can_be_read_and_set(control: httpx.Client) -> None:
    path = f"/_sandbox/accounts/{DOC_ACCOUNT}"
    assert control.get(path).json()["walletBalance"] == "0"
    changed = control.patch(path, json={"walletBalance": "500", "spendQuotaLimit": "900"}).json()
    assert (changed["walletBalance"], changed["spendQuotaLimit"]) == ("500", "900")
    assert control.get("/_sandbox/accounts/NoSuchAccount").status_code == 404
    assert control.patch(path, json={"walletBalance": "-1"}).status_code == 400


def test_the_clock_can_be_read_and_moved_forward(control: httpx.Client) -> None:
    before = control.get("/_sandbox/clock").json()["now"]
    after = control.post("/_sandbox/clock/advance", json={"seconds": 86_400 * 365}).json()["now"]
    assert int(after[:4]) == int(before[:4]) + 1
