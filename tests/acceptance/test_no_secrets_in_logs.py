"""A whole run, failures and lost answers included, leaves no PIN, card number, phone number
or secret in any log, command output or API answer.

The run: a real sandbox with a share of ambiguous faults (timeouts and dropped connections
after the request was applied, 5xx), a real worker and beat at DEBUG, an upload of good
cards and of the seven failing magic cards (9901...9907) through the CLI, a top-up and a
retry. Then everything any part of the service said is searched:

- the log file of every child process (worker, beat), and every other file the run wrote
  (report CSVs);
- this process's logs, captured at DEBUG: the API served in a thread, the CLI commands run
  in process, httpx and httpcore, and SQLAlchemy's echo (on at DEBUG);
- the output of ``upload``, ``status``, ``report``, ``retry``;
- every answer of the API and the dashboard: each GET route listed from the app, the rows
  in each state, an upload, a refused upload, a retry;
- the sandbox's request log (``/_sandbox/ledger/requests``: method and path of each call
  the service made), i.e. what a Centrapay-side access log would hold.

Excluded on purpose, as test instruments that show card numbers by design: the sandbox's
ledger (``/_sandbox/ledger``, counts keyed by card number) and card view
(``/_sandbox/cards/{number}``), and the input CSV itself.

Values are distinctive (10-digit PINs, 11-digit cards, full phone numbers) so that a hit is
a real leak, not digits that happen to occur inside a timestamp or an id.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from distributor.api.app import create_app
from distributor.cli import app as cli
from distributor.config import Settings, get_settings
from tests.acceptance.conftest import wait_until_settled
from tests.conftest import SANDBOX_ACCOUNT, TEST_API_TOKEN
from tests.integration.security.security_helpers import app_routes, found_secrets
from tests.processes import ServiceProcess, service_env, start_together
from tests.serving import serve_in_thread

CENTRAPAY_KEY = "cpk-test-7Hq2Lx9RvB4sW1nZ"  # distinctive: "sandbox-key" is also a word
GOOD = [f"2340{8461930 + i}" for i in range(6)]
MAGIC = [f"{prefix}8461{950 + i}" for i, prefix in enumerate(range(9901, 9908))]
CARDS = GOOD + MAGIC
PINS = [f"73058241{10 + i}" for i in range(len(CARDS))]
PHONES = [f"+642273918{10 + i}" for i in range(len(CARDS))]
API_CARD, API_PIN, API_PHONE = "23408461999", "7305824199", "+64227391899"
FAULTS = {"faultTimeout": 0.15, "faultDrop": 0.1, "fault5xx": 0.05, "timeoutHoldSeconds": 2}
RUN_TIMEOUT_SECONDS = 180.0


def needles(settings: Settings) -> list[str]:
    """Everything that must never be shown: PINs, full card numbers and phones, secrets."""
    assert settings.distributor_secret_key is not None
    phones = [*PHONES, API_PHONE]
    return [
        *CARDS,
        API_CARD,
        *PINS,
        API_PIN,
        *phones,
        *(phone.removeprefix("+64") for phone in phones),  # the national significant number
        CENTRAPAY_KEY,
        settings.distributor_secret_key.get_secret_value(),
        TEST_API_TOKEN,
    ]


@pytest.fixture
def sandbox_api_key() -> str:
    """The sandbox knows only the distinctive API key."""
    return CENTRAPAY_KEY


@pytest.fixture
def run_settings(pipeline_settings: Settings) -> Settings:
    """The fast test settings with the distinctive Centrapay key."""
    return pipeline_settings.model_copy(update={"centrapay_api_key": SecretStr(CENTRAPAY_KEY)})


@pytest.fixture
def debug_services(tmp_path: Path, run_settings: Settings) -> Iterator[list[ServiceProcess]]:
    """A worker and beat at DEBUG, logging to files under tmp_path/logs; stopped after."""
    logs = tmp_path / "logs"
    logs.mkdir()
    env = service_env(run_settings)
    started = [
        ServiceProcess(
            ["worker", "--loglevel", "DEBUG"],
            env=env,
            log_path=logs / "worker.log",
            ready="ready.",
        ),
        ServiceProcess(
            ["beat", "--loglevel", "DEBUG", "--schedule-file", str(tmp_path / "beat-schedule")],
            env=env,
            log_path=logs / "beat.log",
            ready="beat: Starting",
        ),
    ]
    try:
        start_together(started)
        yield started
    finally:
        for process in started:
            process.kill()


CliRun = Callable[..., str]


@pytest.fixture
def run_cli(
    run_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRun]:
    """Run a command in this process with the run's settings; its stdout and stderr."""
    workdir = tmp_path / "cli"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # no stray .env file
    for name, value in service_env(run_settings, COLUMNS="200").items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return f"$ distributor {' '.join(args)}\n{result.stdout}{result.stderr}"

    yield run
    get_settings.cache_clear()


def _upload_file(tmp_path: Path) -> Path:
    """The input CSV, kept apart from everything searched."""
    folder = tmp_path / "input"
    folder.mkdir()
    path = folder / "cards.csv"
    lines = ["recipientAlias,cardNumber,pin,message"]
    lines += [
        f"{phone},{card},{pin},Kia ora {i}"
        for i, (phone, card, pin) in enumerate(zip(PHONES, CARDS, PINS, strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _api_answers(settings: Settings, batch_id: int) -> list[str]:
    """Every GET route of the app (path parameters filled in), and the POST answers."""
    app = create_app(settings, dispatch=lambda _batch_id: None)
    answers = []
    headers = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=headers) as client:

        def keep(response: httpx.Response) -> None:
            answers.append(f"{response.request.method} {response.request.url}\n{response.text}")

        for method, path in sorted(app_routes(app)):
            if method == "GET":
                response = client.get(re.sub(r"\{[^}]+\}", str(batch_id), path))
                assert response.status_code == 200, (path, response.text)
                keep(response)
        for state in ("sent", "failed", "pending", "loaded", "invalid", "duplicate"):
            keep(client.get(f"/batches/{batch_id}/rows", params={"state": state}))
        new_card = f"{API_PHONE},{API_CARD},{API_PIN},api upload\n"
        same_card = f"{PHONES[0]},{CARDS[0]},{API_PIN},a live card again\n"
        upload = client.post(
            "/batches",
            files={"file": ("api.csv", (new_card + same_card).encode(), "text/csv")},
            data={"start": "false"},
        )
        assert upload.status_code == 201, upload.text
        keep(upload)
        keep(client.get(f"/batches/{upload.json()['id']}/rows"))
        keep(client.get(f"/dashboard/batches/{upload.json()['id']}"))
        refused = client.post(
            "/batches", files={"file": ("bad.csv", f"{same_card}".encode(), "text/csv")}
        )
        assert refused.status_code == 422
        keep(refused)
        keep(client.post(f"/batches/{batch_id}/retry", json={}))
    return answers


def _line_with(text: str, needle: str) -> str:
    """The first line of ``text`` holding ``needle`` (as written or in hex), cut short."""
    for line in text.splitlines():
        if needle in line or needle.encode().hex() in line.lower():
            return line[:300]
    return ""


def _files_written(tmp_path: Path) -> dict[str, str]:
    """Every file under tmp_path but the input CSV, as text."""
    return {
        str(path.relative_to(tmp_path)): path.read_bytes().decode("utf-8", errors="replace")
        for path in sorted(tmp_path.rglob("*"))
        if path.is_file() and "input" not in path.relative_to(tmp_path).parts
    }


def test_no_pin_card_number_phone_or_secret_appears_anywhere_after_a_full_run(
    run_settings: Settings,
    control: httpx.Client,
    debug_services: list[ServiceProcess],
    run_cli: CliRun,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy keeps its loggers at WARNING unless told: turn its echo on, rows included.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    assert control.patch("/config", json=FAULTS).status_code == 200
    outputs = [run_cli("upload", str(_upload_file(tmp_path)))]
    batch_id = int(re.search(r"batch (\d+) stored", outputs[0]).group(1))  # type: ignore[union-attr]
    first = wait_until_settled(run_settings, batch_id, timeout=RUN_TIMEOUT_SECONDS)
    assert first == {"sent": len(GOOD), "failed": len(MAGIC)}, first
    outputs.append(run_cli("status", str(batch_id)))
    report_dir = tmp_path / "reports"
    report_dir.mkdir()
    outputs.append(run_cli("report", str(batch_id), "-o", str(report_dir / "first.csv")))
    topped_up = control.patch(
        f"/accounts/{SANDBOX_ACCOUNT}",
        json={"walletBalance": "100000000", "spendQuotaLimit": "100000000"},
    )
    assert topped_up.status_code == 200, topped_up.text
    outputs.append(run_cli("retry", str(batch_id)))
    second = wait_until_settled(run_settings, batch_id, timeout=RUN_TIMEOUT_SECONDS)
    assert second == {"sent": len(GOOD) + 2, "failed": len(MAGIC) - 2}, second
    outputs.append(run_cli("status", str(batch_id)))
    outputs.append(run_cli("report", str(batch_id), "-o", str(report_dir / "second.csv")))

    answers = _api_answers(run_settings, batch_id)
    requests = control.get("/ledger/requests").json()["items"]
    faults = {r["fault"] for r in requests}
    assert faults & {"timeout", "drop"}, f"no ambiguous fault happened: {faults}"
    for process in debug_services:
        process.kill()  # flush and close every log before reading them

    files = _files_written(tmp_path)
    assert {"logs/worker.log", "logs/beat.log", "reports/second.csv"} <= set(files)
    assert "DEBUG" in files["logs/worker.log"], "the worker did not log at DEBUG"
    captured = caplog.text + "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    assert "sqlalchemy.engine" in captured, "SQLAlchemy's echo was not captured"
    places = {
        **files,
        "this process's logs": captured,
        "CLI outputs": "\n".join(outputs),
        "API answers": "\n".join(answers),
        "sandbox request log": json.dumps(requests),
    }
    secrets = needles(run_settings)
    leaks = {
        f"{where}: {needle}": _line_with(text, needle)
        for where, text in places.items()
        for needle in found_secrets(text, secrets)
    }
    assert leaks == {}
