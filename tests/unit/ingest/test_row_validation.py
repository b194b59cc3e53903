"""The row rules, one table per field, and how a record's problems add up."""

from __future__ import annotations

import pytest

from distributor.errors import UploadRejected
from distributor.ingest.columns import POSITIONAL_COLUMNS, Layout
from distributor.ingest.parse import RawRecord
from distributor.ingest.validate import (
    Problem,
    Recipient,
    check_card_number,
    check_message,
    check_pin,
    check_recipient,
    check_record,
)
from distributor.ingest.values import BatchOptions

OPTIONS = BatchOptions(name="test", asset_type="epay.nzd.main", issuer="ezipay")
HEADERLESS = Layout(POSITIONAL_COLUMNS, has_header=False)
WITH_OPTIONAL = Layout((*POSITIONAL_COLUMNS, "type", "issuer", "senderName"), has_header=True)


@pytest.mark.parametrize(
    ("raw", "e164", "masked"),
    [
        ("+64221231234", "+64221231234", "+64*****1234"),
        ("021 123 1234", "+64211231234", "+64*****1234"),
        ("(021) 123-1234", "+64211231234", "+64*****1234"),
        ("+64 22 123 1236", "+64221231236", "+64*****1236"),
        ("0064211231234", "+64211231234", "+64*****1234"),
        ("bob@example.com", "bob@example.com", "b***@example.com"),
        ("Bob.Smith@Example.COM", "Bob.Smith@example.com", "B***@example.com"),
    ],
)
def test_a_mobile_or_email_recipient_is_normalised_and_masked(
    raw: str, e164: str, masked: str
) -> None:
    assert check_recipient(raw) == Recipient(e164, masked)


@pytest.mark.parametrize(
    ("raw", "code", "says"),
    [
        ("", "MISSING_FIELD", "missing"),
        ("Bob", "INVALID_RECIPIENT", "not a phone number or email address"),
        ("0800 FLOWERS", "INVALID_RECIPIENT", "not a phone number or email address"),
        ("+6421123", "INVALID_RECIPIENT", "not a valid NZ phone number"),
        ("12", "INVALID_RECIPIENT", "not a valid NZ phone number"),
        ("+61412345678", "INVALID_RECIPIENT", "a +61 number; Centrapay sends to +64 numbers only"),
        ("+14155552671", "INVALID_RECIPIENT", "a +1 number"),
        ("09 300 1234", "INVALID_RECIPIENT", "a landline"),
        ("0800 123 456", "INVALID_RECIPIENT", "a toll-free number"),
        ("bob@", "INVALID_RECIPIENT", "not a valid email address"),
        ("bob@example", "INVALID_RECIPIENT", "not a valid email address"),
        ("bob smith@example.com", "INVALID_RECIPIENT", "not a valid email address"),
    ],
)
def test_anything_but_a_nz_mobile_or_an_email_is_an_invalid_recipient(
    raw: str, code: str, says: str
) -> None:
    problem = check_recipient(raw)
    assert isinstance(problem, Problem)
    assert (problem.field, problem.code) == ("recipientAlias", code)
    assert says in problem.message


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("23403321042", "23403321042"),
        ("2340 3321 042", "23403321042"),
        ("23403-321-042", "23403321042"),
        ("0023403321042", "0023403321042"),
    ],
)
def test_a_card_number_is_its_digits_without_spaces_or_dashes(raw: str, digits: str) -> None:
    assert check_card_number(raw) == digits


@pytest.mark.parametrize(
    ("raw", "code", "says"),
    [
        ("", "MISSING_FIELD", "missing"),
        ("2340332104A", "INVALID_CARD_NUMBER", "digits only"),
        ("-23403321042", "INVALID_CARD_NUMBER", "digits only"),
        ("+23403321042", "INVALID_CARD_NUMBER", "digits only"),
        ("23403321.042", "INVALID_CARD_NUMBER", "digits only"),
        ("\uff12\uff13\uff14", "INVALID_CARD_NUMBER", "digits only"),  # full-width digits
        ("2.34033E+10", "INVALID_CARD_NUMBER", "scientific notation"),
        ("1" * 65, "INVALID_CARD_NUMBER", "longer than 64 digits"),
    ],
)
def test_a_card_number_with_anything_but_digits_is_invalid(raw: str, code: str, says: str) -> None:
    problem = check_card_number(raw)
    assert isinstance(problem, Problem)
    assert (problem.field, problem.code) == ("cardNumber", code)
    assert says in problem.message


@pytest.mark.parametrize(
    ("raw", "required", "outcome"),
    [
        ("1111", True, "1111"),
        ("0042", True, "0042"),
        ("", False, None),
        ("", True, Problem("pin", "MISSING_FIELD", "missing (PINs are required)")),
        ("12a4", True, Problem("pin", "INVALID_PIN", "must contain digits only")),
        ("12 34", False, Problem("pin", "INVALID_PIN", "must contain digits only")),
    ],
)
def test_a_pin_is_digits_and_may_be_empty_only_when_not_required(
    raw: str, required: bool, outcome: str | Problem | None
) -> None:
    assert check_pin(raw, required=required) == outcome


@pytest.mark.parametrize(
    ("length", "ok"), [(0, True), (100, True), (101, False)], ids=["empty", "100", "101"]
)
def test_a_message_may_have_up_to_100_characters(length: int, ok: bool) -> None:
    problem = check_message("é" * length)
    assert (problem is None) == ok
    if problem is not None:
        assert (problem.code, problem.message) == (
            "MESSAGE_TOO_LONG",
            "101 characters; the limit is 100",
        )


def test_a_valid_record_gives_every_value_to_store() -> None:
    record = RawRecord(7, ["021 123 1234", "2340 3321 042", "1111", " Hi, Bob "])
    checked = check_record(record, layout=HEADERLESS, options=OPTIONS, pin_required=True)
    assert checked.valid
    assert (checked.line, checked.recipient, checked.recipient_masked) == (
        7,
        "+64211231234",
        "+64*****1234",
    )
    assert (checked.card_number, checked.card_masked, checked.pin) == (
        "23403321042",
        "*******21042",
        "1111",
    )
    assert (checked.message, checked.asset_type, checked.issuer) == (
        "Hi, Bob",
        "epay.nzd.main",
        "ezipay",
    )


def test_optional_columns_override_the_batch_defaults() -> None:
    fields = ["+64221231234", "1", "1", "", "EPAY.NZD.TEST", "ezipay", "Acme"]
    checked = check_record(
        RawRecord(2, fields), layout=WITH_OPTIONAL, options=OPTIONS, pin_required=True
    )
    assert (checked.asset_type, checked.issuer, checked.sender_name) == (
        "epay.nzd.test",
        "ezipay",
        "Acme",
    )


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        (["+64221231234", "1", "1", "", "epay.nzd.gold", "", ""], "INVALID_TYPE", "type"),
        (["+64221231234", "1", "1", "", "", "acme", ""], "INVALID_ISSUER", "issuer"),
        (["+64221231234", "1", "1", "", "", "", "x" * 31], "SENDER_NAME_TOO_LONG", "senderName"),
    ],
)
def test_an_unknown_type_or_issuer_in_a_row_is_invalid(
    fields: list[str], code: str, field: str
) -> None:
    checked = check_record(
        RawRecord(2, fields), layout=WITH_OPTIONAL, options=OPTIONS, pin_required=True
    )
    assert [(p.code, p.field) for p in checked.problems] == [(code, field)]
    assert None in (checked.asset_type, checked.issuer, checked.sender_name)


@pytest.mark.parametrize(
    ("fields", "codes"),
    [
        (["+64221231234", "23403321042", "1111"], ["MISSING_FIELD"]),
        (["+64221231234", "23403321042", "1111", "Hi", "Bob"], ["EXTRA_FIELDS"]),
        (
            ["Bob", "card", "", "x" * 101],
            ["INVALID_RECIPIENT", "INVALID_CARD_NUMBER", "MISSING_FIELD", "MESSAGE_TOO_LONG"],
        ),
    ],
    ids=["too-few", "too-many", "everything-wrong"],
)
def test_every_problem_of_a_record_is_kept_in_field_order(
    fields: list[str], codes: list[str]
) -> None:
    checked = check_record(
        RawRecord(3, fields), layout=HEADERLESS, options=OPTIONS, pin_required=True
    )
    assert [problem.code for problem in checked.problems] == codes
    assert not checked.valid


def test_an_invalid_record_keeps_a_well_formed_card_number_but_masks_what_it_shows() -> None:
    record = RawRecord(4, ["+61412345678", "23403321042", "1111", "Hi"])
    checked = check_record(record, layout=HEADERLESS, options=OPTIONS, pin_required=True)
    assert (checked.recipient, checked.recipient_masked) == (None, "*****5678")
    assert (checked.card_number, checked.card_masked) == ("23403321042", "*******21042")
    assert checked.problems[0].message == "a +61 number; Centrapay sends to +64 numbers only"


WITH_TEXTS = Layout((*POSITIONAL_COLUMNS, "senderName", "description"), has_header=True)


@pytest.mark.parametrize(
    ("sender_name", "description", "problems"),
    [
        ("x" * 30, "y" * 200, []),
        ("x" * 31, "", [("SENDER_NAME_TOO_LONG", "senderName")]),
        ("", "y" * 201, [("DESCRIPTION_TOO_LONG", "description")]),
        (
            "x" * 31,
            "y" * 201,
            [("SENDER_NAME_TOO_LONG", "senderName"), ("DESCRIPTION_TOO_LONG", "description")],
        ),
    ],
    ids=["at-the-limits", "sender-name-31", "description-201", "both"],
)
def test_a_sender_name_over_30_or_a_description_over_200_characters_is_a_row_problem(
    sender_name: str, description: str, problems: list[tuple[str, str]]
) -> None:
    fields = ["+64221231234", "23403321042", "1111", "Hi", sender_name, description]
    checked = check_record(
        RawRecord(7, fields), layout=WITH_TEXTS, options=OPTIONS, pin_required=True
    )
    assert [(p.code, p.field) for p in checked.problems] == problems
    assert all("Centrapay's limit" in p.message for p in checked.problems)


def test_a_row_over_the_limit_is_not_stored_with_the_long_text() -> None:
    fields = ["+64221231234", "23403321042", "1111", "Hi", "x" * 31, "y" * 201]
    checked = check_record(
        RawRecord(7, fields), layout=WITH_TEXTS, options=OPTIONS, pin_required=True
    )
    assert (checked.sender_name, checked.description) == (None, None)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (
            {"sender_name": "x" * 31},
            "the batch sender name (--sender-name, senderName) is longer than 30 characters (31)",
        ),
        (
            {"description": "y" * 201},
            "the batch description (--description, description) is longer than 200 characters",
        ),
    ],
    ids=["sender-name", "description"],
)
def test_a_batch_option_over_centrapays_limit_refuses_the_upload_naming_the_option(
    options: dict[str, str], says: str
) -> None:
    with pytest.raises(UploadRejected) as refused:
        BatchOptions(name="t", asset_type="epay.nzd.main", issuer="ezipay", **options).check()
    assert says in str(refused.value)


def test_batch_options_at_centrapays_limits_are_accepted() -> None:
    BatchOptions(
        name="t",
        asset_type="epay.nzd.main",
        issuer="ezipay",
        sender_name="x" * 30,
        description="y" * 200,
    ).check()
