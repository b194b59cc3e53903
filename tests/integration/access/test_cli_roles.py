"""The CLI acts as a named user: users, approve / reject and audit, with role checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from distributor.access.users import token_hash
from distributor.cli import app
from distributor.config import Settings, get_settings
from distributor.db import session_scope
from distributor.models import AuditEntry, User
from tests.integration.access.access_helpers import BIG, SMALL

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment the CLI reads its settings from, for this test's database."""
    get_settings.cache_clear()
    values = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DISTRIBUTOR_SECRET_KEY": settings.distributor_secret_key.get_secret_value(),  # type: ignore[union-attr]
        "APPROVAL_REQUIRED_ABOVE_ROWS": "2",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DISTRIBUTOR_USER", raising=False)
    yield values
    get_settings.cache_clear()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_users_approve_reject_and_audit_from_the_command_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    for name, role in (("olga", "operator"), ("ann", "approver"), ("vic", "viewer")):
        code, out = _run("users", "add", name, "--role", role)
        assert code == 0, out
    code, out = _run("--as", "vic", "users", "add", "eve", "--role", "admin")
    assert code == 1
    assert "vic (viewer) may not user.add: it needs the admin role or above" in out
    cards = tmp_path / "cards.csv"
    cards.write_text(BIG)
    code, out = _run("--as", "vic", "upload", str(cards))
    assert code == 1
    assert "may not upload" in out
    code, out = _run("--as", "olga", "upload", str(cards))
    assert code == 0, out
    assert "awaits approval" in out
    code, out = _run("--as", "olga", "approve", "1")
    assert code == 1
    assert "may not approve" in out
    code, out = _run("--as", "ann", "reject", "1", "--reason", "not today")
    assert code == 0, out
    code, out = _run("--as", "vic", "audit", "--batch", "1")
    assert code == 0, out
    assert "reject" in out
    assert "olga" in out
    code, out = _run("users", "disable", "vic")
    assert code == 0, out
    code, out = _run("--as", "vic", "audit")
    assert code == 1
    assert "disabled" in out
    code, out = _run("--as", "nobody", "status", "1")
    assert code == 1
    assert "no user 'nobody'" in out


CLI_USERS = {"vic": "viewer", "olga": "operator", "ann": "approver", "ada": "admin"}
STEERING = ("start", "pause", "resume", "retry", "cancel")
ADMIN_COMMANDS = (("users", "list"), ("users", "rotate-token", "vic"), ("keys", "rotate"))


@pytest.fixture
def cli_users(env: dict[str, str]) -> dict[str, str]:
    """A user per role, made by the bootstrap admin: name -> role."""
    for name, role in CLI_USERS.items():
        code, out = _run("users", "add", name, "--role", role)
        assert code == 0, out
    return CLI_USERS


@pytest.fixture
def queued_batch(cli_users: dict[str, str], tmp_path: Path) -> int:
    """A one-row batch (under the approval threshold) uploaded by olga with --no-start."""
    cards = tmp_path / "cards.csv"
    cards.write_text(SMALL)
    code, out = _run("--as", "olga", "upload", "--no-start", str(cards))
    assert code == 0, out
    return 1


def _audit(settings: Settings) -> list[tuple[str, str, int | None, str | None]]:
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(
                AuditEntry.actor, AuditEntry.action, AuditEntry.batch_id, AuditEntry.subject
            ).order_by(AuditEntry.id)
        )
        return [(actor, action, batch, subject) for actor, action, batch, subject in rows]


def _one_error_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.parametrize("command", STEERING)
def test_a_viewer_is_refused_each_steering_command_with_one_line_and_exit_1(
    settings: Settings, queued_batch: int, command: str
) -> None:
    before = _audit(settings)
    code, out = _run("--as", "vic", command, str(queued_batch))
    assert code == 1
    assert _one_error_line(out) == (
        f"error: vic (viewer) may not {command}: it needs the operator role or above"
    )
    assert _audit(settings) == before


def test_an_operator_starts_pauses_resumes_retries_and_cancels_audited_under_her_name(
    settings: Settings, queued_batch: int
) -> None:
    for command, said in (
        ("start", "batch 1 started"),
        ("pause", "batch 1 paused"),
        ("resume", "batch 1 resumed"),
        ("retry", "batch 1: 0 rows sent again"),
        ("cancel", "batch 1 cancelled (1 rows)"),
    ):
        code, out = _run("--as", "olga", command, str(queued_batch))
        assert code == 0, (command, out)
        assert said in out, (command, out)
    assert [(actor, action) for actor, action, batch, _ in _audit(settings) if batch] == [
        ("olga", "upload"),
        ("olga", "start"),
        ("olga", "pause"),
        ("olga", "resume"),
        ("olga", "retry"),
        ("olga", "cancel"),
    ]


@pytest.mark.parametrize("name", sorted(CLI_USERS))
def test_every_role_writes_the_report_and_its_download_is_audited(
    settings: Settings, queued_batch: int, tmp_path: Path, name: str
) -> None:
    target = tmp_path / f"report-{name}.csv"
    code, out = _run("--as", name, "report", str(queued_batch), "--output", str(target))
    assert code == 0, out
    assert target.read_text().count("\n") == 2  # the header and the one row
    assert _audit(settings)[-1] == (name, "report.download", queued_batch, None)


@pytest.mark.parametrize("name", ["vic", "olga", "ann"])
@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_users_list_rotate_token_and_keys_rotate_are_refused_below_admin(
    settings: Settings, cli_users: dict[str, str], name: str, command: tuple[str, ...]
) -> None:
    action = {"list": "users.list", "rotate-token": "user.rotate_token", "rotate": "keys.rotate"}
    before = _audit(settings)
    code, out = _run("--as", name, *command)
    assert code == 1
    role = cli_users[name]
    assert _one_error_line(out) == (
        f"error: {name} ({role}) may not {action[command[1]]}: it needs the admin role or above"
    )
    assert _audit(settings) == before


def test_an_admin_lists_users_rotates_a_token_and_rotates_keys(
    settings: Settings, queued_batch: int
) -> None:
    code, out = _run("--as", "ada", "users", "list")
    assert code == 0, out
    for name in CLI_USERS:
        assert name in out
    with session_scope(settings.database_url) as session:
        old_hash = session.scalars(select(User.token_hash).where(User.name == "vic")).one()
    code, out = _run("--as", "ada", "users", "rotate-token", "vic")
    assert code == 0, out
    new_token = out.strip().splitlines()[-1]
    with session_scope(settings.database_url) as session:
        stored = session.scalars(select(User.token_hash).where(User.name == "vic")).one()
    assert stored == token_hash(new_token) != old_hash
    code, out = _run("--as", "ada", "keys", "rotate")
    assert code == 0, out
    assert "every stored secret is under DISTRIBUTOR_SECRET_KEY" in out
    assert [(actor, action, subject) for actor, action, batch, subject in _audit(settings)][
        -2:
    ] == [("ada", "user.rotate_token", "vic"), ("ada", "keys.rotate", None)]


@pytest.mark.parametrize("command", [*STEERING, "report"])
def test_a_disabled_user_is_refused_with_one_line_and_exit_1(
    settings: Settings, queued_batch: int, tmp_path: Path, command: str
) -> None:
    code, out = _run("users", "disable", "olga")
    assert code == 0, out
    before = _audit(settings)
    extra = ("--output", str(tmp_path / "r.csv")) if command == "report" else ()
    code, out = _run("--as", "olga", command, str(queued_batch), *extra)
    assert code == 1
    assert _one_error_line(out) == "error: user 'olga' is disabled"
    assert _audit(settings) == before
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["resend", "1", "--row", "1", "--to", "+64211231234"], "resend"),
        (["reclaim", "1"], "reclaim"),
    ],
)
def test_a_viewer_is_refused_resend_and_reclaim_with_one_line_and_exit_1(
    settings: Settings, queued_batch: int, args: list[str], action: str
) -> None:
    before = _audit(settings)
    code, out = _run("--as", "vic", *args)
    assert code == 1
    assert _one_error_line(out) == (
        f"error: vic (viewer) may not {action}: it needs the operator role or above"
    )
    assert _audit(settings) == before
