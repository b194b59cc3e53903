"""The sandbox is its own package: it imports nothing from the distributor, the
distributor loads it only when it starts one, and its one command line covers every
setting."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import centrapay_sandbox
from centrapay_sandbox import SandboxSettings
from centrapay_sandbox.cli import build_parser

PACKAGE = Path(centrapay_sandbox.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _modules_after(code: str) -> set[str]:
    """The top-level packages in ``sys.modules`` once ``code`` ran in a fresh interpreter."""
    probe = code + "\nimport sys\nprint('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_the_sandbox_has_sources_to_check() -> None:
    assert PACKAGE.name == "centrapay_sandbox"
    assert len(SOURCES) > 10


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_no_sandbox_module_imports_the_distributor(path: Path) -> None:
    offending = [name for name in _imported_modules(path) if name.split(".")[0] == "distributor"]
    assert offending == [], f"{path.name} imports {offending}"


def test_importing_the_whole_sandbox_loads_nothing_of_the_distributor() -> None:
    modules = _modules_after(
        "import centrapay_sandbox, centrapay_sandbox.cli, centrapay_sandbox.__main__"
    )
    assert "centrapay_sandbox" in modules
    assert "distributor" not in modules


@pytest.mark.parametrize("module", ["distributor.standalone.runner", "distributor.cli"])
def test_the_distributor_does_not_load_the_sandbox_until_it_starts_one(module: str) -> None:
    modules = _modules_after(f"import {module}")
    assert "distributor" in modules
    assert "centrapay_sandbox" not in modules


def test_the_command_line_has_an_option_for_every_setting() -> None:
    destinations = {action.dest for action in build_parser()._actions} - {"help"}
    assert destinations == set(SandboxSettings.model_fields)


def test_distributor_sandbox_is_the_same_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from distributor.cli import app

    ours = CliRunner().invoke(app, ["sandbox", "--help"])
    with pytest.raises(SystemExit) as exited:
        build_parser("distributor sandbox").parse_args(["--help"])
    assert exited.value.code == 0
    assert ours.exit_code == 0
    assert ours.output == capsys.readouterr().out
