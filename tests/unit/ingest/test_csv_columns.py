"""Naming the fields: a header by name in any case and order, or the seed's fixed order."""

from __future__ import annotations

import pytest

from distributor.errors import UploadRejected
from distributor.ingest.columns import POSITIONAL_COLUMNS, Layout, detect_layout
from distributor.ingest.parse import RawRecord


def test_a_file_without_a_header_uses_the_seed_column_order() -> None:
    layout = detect_layout(RawRecord(1, ["+64221231234", "23403321042", "1111", "Hi"]))
    assert layout == Layout(POSITIONAL_COLUMNS, has_header=False)


def test_a_header_is_recognised_in_any_case_and_order() -> None:
    layout = detect_layout(RawRecord(1, ["MESSAGE", " pin ", "CardNumber", "recipientalias"]))
    assert layout == Layout(("message", "pin", "cardNumber", "recipientAlias"), has_header=True)


def test_optional_columns_are_recognised_and_blank_header_cells_ignored() -> None:
    header = ["recipientAlias", "cardNumber", "pin", "message", "Type", "issuer", "", "senderName"]
    layout = detect_layout(RawRecord(1, header))
    assert layout.names == (*POSITIONAL_COLUMNS, "type", "issuer", "", "senderName")


def test_split_names_values_and_reports_missing_and_extra_fields() -> None:
    layout = Layout(POSITIONAL_COLUMNS, has_header=False)
    assert layout.split(RawRecord(2, [" a ", "b"])) == (
        {"recipientAlias": "a", "cardNumber": "b"},
        ("pin", "message"),
        0,
    )
    assert layout.split(RawRecord(2, ["a", "b", "c", "d", "e", " "]))[1:] == ((), 1)


def test_trailing_empty_cells_are_not_extra_fields() -> None:
    layout = Layout(POSITIONAL_COLUMNS, has_header=False)
    assert layout.split(RawRecord(2, ["a", "b", "c", "d", "", ""]))[1:] == ((), 0)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        (["recipientAlias", "cardNumber", "pin", "mesage"], "unknown column 'mesage'"),
        (["recipientAlias", "cardNumber", "PIN", "pin"], "column pin appears twice"),
        (["recipientAlias", "pin", "message"], "the header has no cardNumber column"),
        (["recipientAlias;cardNumber;pin;message"], "separated by semicolons"),
        (["+64221231234\t23403321042\t1111"], "separated by tabs"),
        (['{"cards": []}'], "one column where a CSV of recipientAlias,cardNumber,pin,message"),
    ],
    ids=["misspelt", "twice", "no-card", "semicolons", "tabs", "one-column"],
)
def test_a_first_line_that_cannot_be_trusted_refuses_the_file(fields: list[str], says: str) -> None:
    with pytest.raises(UploadRejected, match=says) as caught:
        detect_layout(RawRecord(1, fields))
    assert caught.value.line == 1
