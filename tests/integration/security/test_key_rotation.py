"""Rotating DISTRIBUTOR_SECRET_KEY: every stored secret moves to the new key, and duplicates
are still found before, during and after the move."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from distributor import keys
from distributor.cli import app
from distributor.config import Settings, get_settings
from distributor.db import session_scope
from distributor.errors import DistributorError
from distributor.ingest import DUPLICATE_LIVE
from distributor.keys import Keyring, RotationReport, keyring_from_settings, rotate_keys
from distributor.pipeline.clock import utcnow
from distributor.pipeline.retry import retry
from distributor.vault import Vault, make_vault, vault_from_settings
from tests.conftest import TEST_SECRET_KEY
from tests.factories import make_batch, make_row
from tests.integration.security.security_helpers import (
    CARDS,
    NEEDLES,
    OPTIONS,
    PINS,
    found_secrets,
    libpq_url,
    upload,
)

OLD = TEST_SECRET_KEY
NEW = "rotated-secret-key-9876543210fedcba-9876543210"
FOUR_CARDS = (
    "recipientAlias,cardNumber,pin,message\n"
    "+64227391846,23407319468,58203917,one\n"
    "+64227391847,23407319469,58203918,two\n"
    "+64227391848,23407319470,58203919,three\n"
    "+64227391849,23407319471,58203920,four\n"
)
SAME_FOUR_AND_A_NEW_ONE = (
    "recipientAlias,cardNumber,pin,message\n"
    "+64227391856,23407319468,58203927,one again\n"
    "+64227391857,23407319469,58203928,two again\n"
    "+64227391858,23407319470,58203929,three again\n"
    "+64227391859,23407319471,58203930,four again\n"
    "+64227391860,23407319472,58203931,a card never seen\n"
)


def under(settings: Settings, secret: str, *previous: str) -> Settings:
    """``settings`` with ``secret`` current and ``previous`` still accepted for reading."""
    return settings.model_copy(
        update={
            "distributor_secret_key": SecretStr(secret),
            "distributor_previous_secret_keys": list(previous),
        }
    )


def stored(database_url: str) -> list[dict[str, Any]]:
    """Every row's secret columns, by id, as the database holds them."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        found = conn.execute(
            "SELECT id, line_no, batch_id, state, issuer, asset_type, card_key, "
            "card_number_enc, pin_enc, updated_at FROM rows ORDER BY id"
        )
        names = [column.name for column in found.description or ()]
        return [dict(zip(names, row, strict=True)) for row in found]


def store_twin(database_url: str, card_number: str) -> int:
    """A second live row of an uploaded card, keyed under the new secret: what an upload by a
    process on the new secret racing one on the old could leave behind. Its row id."""
    with session_scope(database_url) as session:
        batch = make_batch(session)
        batch.asset_type = OPTIONS.asset_type  # the card key covers issuer, type and number
        return make_row(session, batch=batch, vault=make_vault(NEW), card_number=card_number).id


def assert_all_under(database_url: str, vault: Vault) -> None:
    """Every stored card number and PIN decrypts with ``vault``, every key is its key."""
    for row in stored(database_url):
        card = vault.decrypt(bytes(row["card_number_enc"]))
        assert card in CARDS or card.startswith("2340731947"), row["id"]
        if row["pin_enc"] is not None:
            assert vault.decrypt(bytes(row["pin_enc"])) in PINS or row["batch_id"] > 1
        if row["card_key"] is not None:
            expected = vault.card_key(
                issuer=row["issuer"], asset_type=row["asset_type"], card_number=card
            )
            assert row["card_key"] == expected, row["id"]


def test_rotation_moves_every_card_number_pin_and_card_key_to_the_new_secret(
    settings: Settings,
) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    before = stored(settings.database_url)
    report = rotate_keys(
        settings.database_url, keyring=keyring_from_settings(under(settings, NEW, OLD))
    )
    assert (report.examined, report.rotated, report.current, report.complete) == (5, 5, 0, True)
    assert_all_under(settings.database_url, make_vault(NEW))
    after = stored(settings.database_url)
    for old, new in zip(before, after, strict=True):
        assert new["card_key"] != old["card_key"] or old["card_key"] is None
        assert new["updated_at"] == old["updated_at"], "a rotation is not an event of the row"
        assert new["state"] == old["state"]


def test_a_second_rotation_finds_everything_current_and_writes_nothing(settings: Settings) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    keyring = keyring_from_settings(under(settings, NEW, OLD))
    rotate_keys(settings.database_url, keyring=keyring)
    once = stored(settings.database_url)
    again = rotate_keys(settings.database_url, keyring=keyring)
    assert (again.examined, again.rotated, again.current, again.complete) == (5, 0, 5, True)
    assert stored(settings.database_url) == once


def test_a_rotation_stopped_half_way_is_finished_by_running_it_again(settings: Settings) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    keyring = keyring_from_settings(under(settings, NEW, OLD))
    with session_scope(settings.database_url) as session:
        first = keys.rotate_chunk(session, keyring=keyring, after_id=0, limit=2)
    assert (first.rotated, first.current) == (2, 0)
    rest = rotate_keys(settings.database_url, keyring=keyring, chunk_rows=2)
    assert (rest.examined, rest.rotated, rest.current, rest.complete) == (5, 3, 2, True)
    assert_all_under(settings.database_url, make_vault(NEW))


def test_after_rotation_the_old_secret_can_be_removed_and_everything_still_decrypts(
    settings: Settings,
) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    rotate_keys(settings.database_url, keyring=keyring_from_settings(under(settings, NEW, OLD)))
    new_only = keyring_from_settings(under(settings, NEW))
    assert_all_under(settings.database_url, new_only.every)
    check = rotate_keys(settings.database_url, keyring=new_only, write=False)
    assert (check.rotated, check.current, check.complete) == (0, 5, True)


def test_a_row_not_rotated_fails_with_a_clear_error_once_the_old_secret_is_removed(
    settings: Settings,
) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    before = stored(settings.database_url)
    new_only = keyring_from_settings(under(settings, NEW))
    with pytest.raises(DistributorError, match="DISTRIBUTOR_PREVIOUS_SECRET_KEYS"):
        new_only.every.decrypt(bytes(before[0]["card_number_enc"]))
    report = rotate_keys(settings.database_url, keyring=new_only)
    assert report.unreadable == [row["id"] for row in before]
    assert (report.rotated, report.complete) == (0, False)
    assert stored(settings.database_url) == before, "an unreadable row is left as it was"


@pytest.mark.parametrize("rotated_rows", [0, 2, 4], ids=["not rotated", "half", "all"])
def test_a_card_uploaded_again_under_the_new_secret_is_still_a_duplicate(
    settings: Settings, rotated_rows: int
) -> None:
    first = upload(settings.database_url, vault_from_settings(settings), FOUR_CARDS)
    assert first.counts["pending"] == 4
    rotating = under(settings, NEW, OLD)
    if rotated_rows:
        with session_scope(settings.database_url) as session:
            keys.rotate_chunk(
                session, keyring=keyring_from_settings(rotating), after_id=0, limit=rotated_rows
            )
    again = upload(settings.database_url, vault_from_settings(rotating), SAME_FOUR_AND_A_NEW_ONE)
    assert again.counts == {"pending": 1, "invalid": 0, "duplicate": 4}
    assert [problem.code for problem in again.problems] == [DUPLICATE_LIVE] * 4


def test_after_rotation_and_removing_the_old_secret_a_card_is_still_a_duplicate(
    settings: Settings,
) -> None:
    upload(settings.database_url, vault_from_settings(settings), FOUR_CARDS)
    rotate_keys(settings.database_url, keyring=keyring_from_settings(under(settings, NEW, OLD)))
    again = upload(
        settings.database_url, vault_from_settings(under(settings, NEW)), SAME_FOUR_AND_A_NEW_ONE
    )
    assert again.counts == {"pending": 1, "invalid": 0, "duplicate": 4}


def test_an_upload_between_two_chunks_finds_the_cards_on_both_sides_of_the_boundary(
    settings: Settings,
) -> None:
    upload(settings.database_url, vault_from_settings(settings), FOUR_CARDS)
    rotating = under(settings, NEW, OLD)
    uploads = []

    def upload_mid_way(progress: RotationReport) -> None:
        if progress.examined == 2:
            uploads.append(
                upload(
                    settings.database_url, vault_from_settings(rotating), SAME_FOUR_AND_A_NEW_ONE
                )
            )

    report = rotate_keys(
        settings.database_url,
        keyring=keyring_from_settings(rotating),
        chunk_rows=2,
        on_chunk=upload_mid_way,
    )
    assert uploads[0].counts == {"pending": 1, "invalid": 0, "duplicate": 4}
    assert report.complete
    assert (report.rotated, report.current) == (4, 5), "rows uploaded mid-way are current"


def test_a_pin_wiped_by_a_worker_during_rotation_is_not_written_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(settings.database_url, vault_from_settings(settings), FOUR_CARDS)
    first_id = stored(settings.database_url)[0]["id"]
    renewed = keys._renewed

    def worker_loads_the_card_meanwhile(keyring: Keyring, row: Any) -> dict[str, Any]:
        values = renewed(keyring, row)
        if row.id == first_id and row.pin_enc is not None:
            with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
                conn.execute("UPDATE rows SET pin_enc = NULL WHERE id = %s", (first_id,))
        return values

    monkeypatch.setattr(keys, "_renewed", worker_loads_the_card_meanwhile)
    report = rotate_keys(
        settings.database_url, keyring=keyring_from_settings(under(settings, NEW, OLD))
    )
    assert (report.rotated, report.busy, report.complete) == (4, [], True)
    row = stored(settings.database_url)[0]
    assert row["pin_enc"] is None
    assert make_vault(NEW).decrypt(bytes(row["card_number_enc"])) == "23407319468"


def test_two_live_rows_of_one_card_are_reported_and_keep_the_old_key(settings: Settings) -> None:
    """The state a process still on the old secret can race into; rotation must not hide it."""
    upload(settings.database_url, vault_from_settings(settings), FOUR_CARDS)
    twin = store_twin(settings.database_url, "23407319469")
    before = {row["id"]: row for row in stored(settings.database_url)}
    report = rotate_keys(
        settings.database_url, keyring=keyring_from_settings(under(settings, NEW, OLD))
    )
    second = sorted(before)[1]
    assert report.clashes == [(second, twin)]
    assert (report.rotated, report.current, report.complete) == (3, 1, False)
    assert stored(settings.database_url)[1] == before[second], "the row keeps its old secret"


@pytest.mark.parametrize("rotated", [False, True], ids=["before-rotation", "after-rotation"])
def test_retry_refuses_a_row_whose_card_went_live_under_the_new_secret(
    settings: Settings, rotated: bool
) -> None:
    first = upload(settings.database_url, vault_from_settings(settings), FOUR_CARDS)
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        conn.execute("UPDATE rows SET state = 'failed', error_code = 'UNKNOWN_ASSET'")
    rotating = under(settings, NEW, OLD)
    upload(settings.database_url, vault_from_settings(rotating), FOUR_CARDS)
    if rotated:
        rotate_keys(settings.database_url, keyring=keyring_from_settings(rotating))
    with session_scope(settings.database_url) as session:
        result = retry(
            session, batch_id=first.batch_id, vault=vault_from_settings(rotating), now=utcnow()
        )
    assert (len(result.retried), len(result.refused)) == (0, 4)


def test_rotation_works_the_same_on_the_standalone_sqlite_database(sqlite_url: str) -> None:
    upload(sqlite_url, make_vault(OLD), FOUR_CARDS)
    keyring = Keyring(every=make_vault(NEW, (OLD,)), current=make_vault(NEW))
    report = rotate_keys(sqlite_url, keyring=keyring, chunk_rows=3)
    assert (report.rotated, report.complete) == (4, True)
    again = upload(sqlite_url, make_vault(NEW), SAME_FOUR_AND_A_NEW_ONE)
    assert again.counts["duplicate"] == 4


# The commands


Run = Callable[..., tuple[int, str]]


@pytest.fixture
def run_cli(cli_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run a command in process with ``secret`` current and ``previous`` listed."""
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, secret: str = NEW, previous: tuple[str, ...] = ()) -> tuple[int, str]:
        monkeypatch.setenv("DISTRIBUTOR_SECRET_KEY", secret)
        monkeypatch.setenv("DISTRIBUTOR_PREVIOUS_SECRET_KEYS", ",".join(previous))
        get_settings.cache_clear()
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout + result.stderr

    return run


def test_keys_generate_prints_a_fresh_secret_the_settings_accept(run_cli: Run) -> None:
    code, first = run_cli("keys", "generate")
    _, second = run_cli("keys", "generate")
    assert code == 0
    secret = first.strip()
    assert first == secret + "\n" and len(secret) >= 64 and secret != second.strip()
    assert secret.replace("-", "").replace("_", "").isalnum()
    Settings(_env_file=None, distributor_secret_key=secret)  # type: ignore[call-arg, arg-type]


def test_keys_rotate_prints_counts_and_says_when_the_old_secret_can_go(
    settings: Settings, run_cli: Run
) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    code, before = run_cli("keys", "rotate", "--check", previous=(OLD,))
    assert code == 1
    assert "to rotate: 5" in before
    code, output = run_cli("keys", "rotate", "--chunk-rows", "2", previous=(OLD,))
    assert code == 0, output
    assert "rows examined: 5" in output and "rotated to the current secret: 5" in output
    assert "can be removed from DISTRIBUTOR_PREVIOUS_SECRET_KEYS" in output
    code, check = run_cli("keys", "rotate", "--check")
    assert code == 0, check
    assert "to rotate: 0" in check and "already current: 5" in check
    assert found_secrets(before + output + check, (*NEEDLES, OLD, NEW)) == []


def test_keys_rotate_without_the_old_secret_names_the_unreadable_rows_and_fails(
    settings: Settings, run_cli: Run
) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    code, output = run_cli("keys", "rotate")
    assert code == 1
    assert "unreadable: 5 rows no configured secret decrypts" in output
    assert "DISTRIBUTOR_PREVIOUS_SECRET_KEYS" in output
    assert "can be removed" not in output
    assert found_secrets(output, (*NEEDLES, OLD, NEW)) == []


def test_keys_rotate_names_two_live_rows_of_one_card(settings: Settings, run_cli: Run) -> None:
    upload(settings.database_url, vault_from_settings(settings), FOUR_CARDS)
    twin = store_twin(settings.database_url, "23407319469")
    code, output = run_cli("keys", "rotate", previous=(OLD,))
    assert code == 1
    assert (
        f"held live twice: 1 rows hold a card another live row holds (rows 2 and {twin})" in output
    )


def test_keys_rotate_without_a_secret_names_the_variable(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISTRIBUTOR_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["keys", "rotate"])
    assert result.exit_code == 2
    assert "DISTRIBUTOR_SECRET_KEY is not set" in result.stderr
