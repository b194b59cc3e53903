"""Starting and stopping the sandbox: free ports, readiness, clean stop, bad settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from centrapay_sandbox import ConfigError, SandboxSettings, running_sandbox


def settings(**values: object) -> SandboxSettings:
    return SandboxSettings(_env_file=None, **values)  # type: ignore[arg-type]


def test_two_sandboxes_run_side_by_side_on_free_ports_and_stop_cleanly() -> None:
    with running_sandbox(settings()) as first, running_sandbox(settings()) as second:
        assert first.port != second.port
        for handle in (first, second):
            assert handle.base_url.startswith("http://127.0.0.1:")
            assert httpx.get(handle.base_url + "/_sandbox/health").json() == {"status": "ok"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(first.base_url + "/_sandbox/health")


def test_the_default_api_key_opens_the_default_account() -> None:
    with running_sandbox(settings()) as sandbox:
        response = httpx.get(
            sandbox.base_url + "/api/accounts/sandbox-account/assets",
            headers={"X-Api-Key": "sandbox-key"},
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("content", "reason"),
    [("{not json", "invalid"), ('{"cards": [{"cardNumber": "12x"}]}', "invalid")],
)
def test_a_bad_card_catalogue_is_a_config_error(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "cards.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=reason), running_sandbox(settings(cards=path)):
        pass


def test_a_missing_card_catalogue_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError), running_sandbox(settings(cards=tmp_path / "none.json")):
        pass


def test_an_api_key_entry_without_an_account_is_a_config_error() -> None:
    with (
        pytest.raises(ConfigError, match="key:accountId"),
        running_sandbox(settings(api_keys=["just-a-key"])),
    ):
        pass


def test_the_module_entry_point_refuses_an_invalid_option_clearly() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "centrapay_sandbox", "--fault-5xx", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 2
    assert "fault_5xx" in completed.stderr
