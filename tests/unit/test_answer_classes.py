"""Each Centrapay answer falls in one class of the answer log (and of the dashboard's chart)."""

from __future__ import annotations

import pytest

from distributor.answer_log import answer_class


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "2xx"),
        (201, "2xx"),
        (429, "429"),
        (500, "5xx"),
        (503, "5xx"),
        (504, "5xx"),
        (None, "timeout"),
        (400, "other"),
        (401, "other"),
        (403, "other"),
        (404, "other"),
    ],
)
def test_an_answer_is_classed_by_its_status_and_no_answer_is_a_timeout(
    status: int | None, expected: str
) -> None:
    assert answer_class(status) == expected
