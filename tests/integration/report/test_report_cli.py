"""``distributor report`` as an operator runs it: a child process writing the file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from distributor.config import Settings
from distributor.report import HEADER
from tests.integration.report.report_helpers import (
    EXPECTED,
    SECRETS,
    parse,
    without_database_times,
)
from tests.processes import run_distributor, service_env

CLI_TIMEOUT_SECONDS = 60.0
UNREACHABLE_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/distributor"


def _run(settings: Settings, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    env = service_env(settings, COLUMNS="200", **env)
    return run_distributor("report", *args, env=env, cwd=cwd, timeout=CLI_TIMEOUT_SECONDS)


def test_the_report_is_written_here_by_default_and_its_path_and_row_count_printed(
    settings: Settings, batch_id: int, tmp_path: Path
) -> None:
    done = _run(settings, str(batch_id), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / f"batch-{batch_id}-report.csv"
    assert done.stdout.strip() == f"wrote {len(EXPECTED)} rows to {written}"
    text = written.read_bytes().decode("utf-8")
    assert text.startswith(",".join(HEADER) + "\r\n")
    assert without_database_times(parse(text)) == EXPECTED
    assert [path.name for path in tmp_path.iterdir()] == [written.name]


def test_the_output_option_chooses_the_file(
    settings: Settings, batch_id: int, tmp_path: Path
) -> None:
    (tmp_path / "finance").mkdir()
    done = _run(settings, str(batch_id), "-o", "finance/november.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(str(tmp_path / "finance" / "november.csv"))
    assert len(parse((tmp_path / "finance" / "november.csv").read_text())) == len(EXPECTED)


def test_no_pin_card_number_or_clear_recipient_appears_in_the_file_or_the_output(
    settings: Settings, batch_id: int, tmp_path: Path
) -> None:
    done = _run(settings, str(batch_id), "--output", "report.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for text in (done.stdout, done.stderr, (tmp_path / "report.csv").read_text()):
        for secret in SECRETS:
            assert secret not in text


def test_a_file_that_cannot_be_written_is_one_line(
    settings: Settings, batch_id: int, tmp_path: Path
) -> None:
    done = _run(settings, str(batch_id), "-o", "missing/november.csv", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: cannot write missing/november.csv: No such file or directory"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_batch_is_one_line_and_leaves_no_file(
    settings: Settings, tmp_path: Path
) -> None:
    done = _run(settings, "999999", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: batch 999999 does not exist"
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_database_is_one_line_and_leaves_no_file(
    settings: Settings, tmp_path: Path
) -> None:
    done = _run(settings, "1", cwd=tmp_path, DATABASE_URL=UNREACHABLE_DATABASE_URL)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: cannot read the database at DATABASE_URL: ")
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
