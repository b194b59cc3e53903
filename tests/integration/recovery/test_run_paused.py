"""``distributor run FILE --batch ID`` goes on with a batch a 401 paused, once the key is right."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from centrapay_sandbox.server import SandboxHandle
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY

CSV = "recipientAlias,cardNumber,pin,message\n" + "".join(
    f"+642212{index:05d},2340550{index:04d},1234,Hello {index}\n" for index in range(3)
)


def _run(
    tmp_path: Path, sandbox: SandboxHandle, *args: str, key: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CENTRAPAY_", "DISTRIBUTOR_", "SANDBOX_"))
    }
    env |= {
        "CENTRAPAY_BASE_URL": sandbox.base_url,
        "CENTRAPAY_API_KEY": key,
        "CENTRAPAY_ACCOUNT_ID": SANDBOX_ACCOUNT,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "distributor", "run", "cards.csv", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_batch_paused_by_a_wrong_key_is_resumed_by_a_run_with_its_id(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    (tmp_path / "cards.csv").write_text(CSV)
    paused = _run(tmp_path, sandbox, key="a-wrong-key")
    assert paused.returncode == 1, paused.stdout + paused.stderr
    assert "batch 1: paused" in paused.stdout
    assert "run again with --batch 1" in paused.stdout
    resumed = _run(tmp_path, sandbox, "--batch", "1", key=SANDBOX_KEY)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "batch 1 was paused" in resumed.stdout and "resuming it" in resumed.stdout
    assert "batch 1: done" in resumed.stdout


def test_a_run_with_the_id_of_a_finished_batch_says_there_is_nothing_left(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    (tmp_path / "cards.csv").write_text(CSV)
    assert _run(tmp_path, sandbox, key=SANDBOX_KEY).returncode == 0
    again = _run(tmp_path, sandbox, "--batch", "1", key=SANDBOX_KEY)
    assert "batch 1 is done: nothing left to send" in again.stdout, again.stdout + again.stderr
