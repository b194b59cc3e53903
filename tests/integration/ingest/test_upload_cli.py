"""`distributor upload` and `distributor status` against real Postgres, in and out of process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from distributor.cli import app
from distributor.constants import CONTROL_QUEUE

CSV_DIR = Path(__file__).parents[2] / "data" / "csv"
DISTRIBUTOR = Path(sys.executable).parent / "distributor"
WIDE = "1000"  # columns: Rich wraps long lines at the terminal width, 80 when not a terminal
CARDS = (
    "recipientAlias,cardNumber,pin,message\n"
    "+64221231234,4000123498761,908171,first\n"
    "Bob,4000123498762,908172,bad recipient\n"
    "+64221231236,4000-1234-98763,908173,third\n"
    "+64221231237,4000123498761,908174,same card as line 2\n"
    "+64221231238,40001234987x5,908175,letter in card\n"
)
SECRETS = (
    "4000123498761",
    "4000123498762",
    "4000-1234-98763",
    "4000123498763",
    "40001234987x5",
    "908171",
    "908172",
    "908173",
    "908174",
    "908175",
)


@pytest.fixture
def environment(cli_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The variables a command needs to reach the test database, set for this process too."""
    monkeypatch.setenv("COLUMNS", WIDE)
    return {**cli_environment, "COLUMNS": WIDE}


def write(tmp_path: Path, text: str, name: str = "cards.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def flat(text: str) -> str:
    """Output with each run of spaces made one, so table cells compare whatever their width."""
    return " ".join(text.split())


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_process(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DISTRIBUTOR), *args],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_without_the_password(err: str, says: str) -> None:
    """``err`` is one line starting with ``says``, with no sign of the password hunter2."""
    assert err.startswith(says)
    assert err.count("\n") == 1
    assert "hunter2" not in err


def test_upload_prints_the_batch_id_counts_and_first_problems(
    environment: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = run("upload", str(write(tmp_path, CARDS)))
    assert (code, err) == (0, "")
    shown = flat(out)
    assert "batch 1 stored from cards.csv: 5 rows" in shown
    assert "batch 1 started" in shown
    assert "│ pending │ 2 │ │ invalid │ 2 │ │ duplicate │ 1 │" in shown
    assert (
        "│ 3 │ recipientAlias │ INVALID_RECIPIENT │ not a phone number or email address │" in shown
    )
    assert "│ 5 │ cardNumber │ DUPLICATE_IN_FILE │ the same card as line 2 │" in shown
    assert "│ 6 │ cardNumber │ INVALID_CARD_NUMBER │ must contain digits only │" in shown


def test_upload_starts_the_batch_and_asks_a_worker_to_queue_its_rows(
    environment: dict[str, str], tmp_path: Path
) -> None:
    code, _, _ = run("upload", str(write(tmp_path, CARDS)))
    assert code == 0
    assert "batch 1 cards.csv: running" in run("status", "1")[1]
    assert redis.Redis.from_url(environment["REDIS_URL"]).llen(CONTROL_QUEUE) == 1, "a dispatch"


def test_upload_with_no_start_leaves_the_batch_queued_with_the_options_given(
    environment: dict[str, str], tmp_path: Path
) -> None:
    path = write(tmp_path, CARDS)
    options = ["--type", "epay.nzd.test", "--issuer", "ezipay", "--sender-name", "Acme"]
    code, out, _ = run("upload", str(path), *options, "--name", "December", "--no-start")
    assert code == 0
    assert "started" not in out
    code, out, _ = run("status", "1")
    assert code == 0
    assert "batch 1 December: queued" in out
    assert "epay.nzd.test from ezipay, 5 rows" in out
    assert redis.Redis.from_url(environment["REDIS_URL"]).llen(CONTROL_QUEUE) == 0


def test_an_unreachable_queue_after_storing_says_the_batch_runs_and_who_will_queue_it(
    environment: dict[str, str], tmp_path: Path
) -> None:
    environment = {**environment, "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}
    finished = run_process(environment, "upload", str(write(tmp_path, CARDS)))
    assert finished.returncode == 1
    assert "batch 1 stored from cards.csv: 5 rows" in finished.stdout
    assert_one_line_without_the_password(
        finished.stderr, "error: batch 1 is running, but the queue (REDIS_URL) could not be reached"
    )


def test_status_prints_the_batch_and_its_rows_by_state(
    environment: dict[str, str], tmp_path: Path
) -> None:
    run("upload", str(write(tmp_path, CARDS)), "--no-start")
    code, out, err = run("status", "1")
    assert (code, err) == (0, "")
    assert "batch 1 cards.csv: queued" in out
    for state, count in [("pending", 2), ("sent", 0), ("invalid", 2), ("duplicate", 1)]:
        assert f"│ {state} │ {count} │" in flat(out)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["upload", "{tmp}/empty.csv"], "error: the file is empty"),
        (["upload", "{tmp}/bad.csv"], "error: no valid row to send: 1 invalid, 0 duplicate."),
        (["upload", "{tmp}/bad.csv", "--type", "gold"], "error: type must be one of"),
        (["status", "42"], "error: batch 42 does not exist"),
    ],
    ids=["empty", "no-valid-row", "bad-type", "no-such-batch"],
)
def test_a_refused_command_exits_1_with_one_clear_line(
    environment: dict[str, str], tmp_path: Path, args: list[str], says: str
) -> None:
    write(tmp_path, "", "empty.csv")
    write(tmp_path, "Bob,1001,1111,hi\n", "bad.csv")
    code, out, err = run(*(arg.format(tmp=tmp_path) for arg in args))
    assert code == 1
    assert out == ""
    assert err.startswith(says)
    assert err.count("\n") == 1


def test_an_unreachable_database_is_one_line_without_its_password(
    environment: dict[str, str], tmp_path: Path
) -> None:
    environment = {
        **environment,
        "DATABASE_URL": "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nowhere",
    }
    path = write(tmp_path, CARDS)
    for args in (["upload", str(path)], ["status", "1"]):
        finished = run_process(environment, *args)
        assert finished.returncode == 1
        assert finished.stdout == ""
        assert_one_line_without_the_password(
            finished.stderr,
            "error: database postgresql+psycopg://postgres:***@127.0.0.1:1/nowhere: "
            "connection failed",
        )


def test_a_database_without_the_schema_says_to_run_the_migrations(
    environment: dict[str, str], tmp_path: Path
) -> None:
    environment = {**environment, "DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    finished = run_process(environment, "status", "1")
    assert finished.returncode == 1
    assert "(run `distributor db upgrade`)" in finished.stderr


def test_a_missing_secret_key_is_one_line_naming_the_variable(
    environment: dict[str, str], tmp_path: Path
) -> None:
    environment = {**environment, "DISTRIBUTOR_SECRET_KEY": ""}
    finished = run_process(environment, "upload", str(write(tmp_path, CARDS)))
    assert finished.returncode == 2
    assert "DISTRIBUTOR_SECRET_KEY" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_no_pin_or_card_number_reaches_the_output_or_the_logs(
    environment: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statements and parameters
    path = write(tmp_path, CARDS)
    rejected = write(tmp_path, CARDS.replace("+6422", "Bob"), "rejected.csv")
    in_process = [run("upload", str(path)), run("upload", str(rejected)), run("status", "1")]
    in_child = [
        run_process(environment, "upload", str(path)),
        run_process(environment, "upload", str(rejected)),
    ]
    assert [code for code, _, _ in in_process] == [0, 1, 0]
    assert [finished.returncode for finished in in_child] == [1, 1]
    assert "SELECT" in caplog.text  # the statements really were logged
    seen = "\n".join(
        [
            caplog.text,
            *(out + err for _, out, err in in_process),
            *(finished.stdout + finished.stderr for finished in in_child),
        ]
    )
    for secret in SECRETS:
        assert secret not in seen
