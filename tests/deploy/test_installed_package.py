"""A normal install (not editable) carries everything it runs: ``distributor db upgrade``
builds the schema from the migrations inside the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from distributor.db import get_engine
from tests.processes import run_distributor
from tests.resources import fresh_database

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_SECONDS = 240


def test_a_non_editable_install_upgrades_an_empty_database(tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = ["install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target)]
    subprocess.run(
        [sys.executable, "-m", "pip", *install, str(ROOT)],
        check=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        capture_output=True,
    )
    assert not (target / "distributor" / "__editable__").exists()
    with fresh_database("distributor_installed") as url:
        # From elsewhere, with the install first on the path: the checkout is not used.
        env = {**os.environ, "PYTHONPATH": str(target), "DATABASE_URL": url}
        upgraded = run_distributor("db", "upgrade", cwd=tmp_path, env=env)
        assert upgraded.returncode == 0, upgraded.stderr[-2000:]
        where = subprocess.run(
            [sys.executable, "-c", "import distributor.migrate as m; print(m.MIGRATIONS_DIR)"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert where.startswith(str(target)), where
        tables = set(inspect(get_engine(url)).get_table_names())
        assert {"batches", "rows", "alembic_version"} <= tables
