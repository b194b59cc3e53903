"""Listing pages: an opaque ``nextPageKey`` that the client passes back as ``pageKey``.

Centrapay does not document the order of its listings, so the sandbox's is a setting
(``SANDBOX_LIST_ORDER``): ``newest`` first (the default) or ``oldest`` first. The key holds
the order and the sequence number of the last item served, so a walk keeps the order it
started in and stays correct while items are added: newest first, the items added after
the first page are not served on its later pages; oldest first, they come at the end.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from centrapay_sandbox import problems
from centrapay_sandbox.models import Asset, Page, Transfer

Index = list[tuple[int, str]]
"""(sequence number, id) pairs in sequence order: what a listing pages through."""

S = TypeVar("S", Asset, Transfer)


class ListOrder(StrEnum):
    """The order of every listing."""

    NEWEST = "newest"
    OLDEST = "oldest"


ORDER_MARKS = {ListOrder.NEWEST: "n", ListOrder.OLDEST: "o"}
MARK_ORDERS = {mark: order for order, mark in ORDER_MARKS.items()}


@dataclass(frozen=True)
class Position:
    """Where a walk stands: its order and the sequence number of the last item served."""

    order: ListOrder
    after_seq: int | None


def encode_page_key(order: ListOrder, seq: int) -> str:
    """The opaque ``nextPageKey`` after the item with this sequence number."""
    text = f"{ORDER_MARKS[order]}{seq}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def position(page_key: str | None, order: ListOrder) -> Position:
    """Where ``page_key`` continues (a new walk in ``order`` without one); 400 when the
    key is not one of ours."""
    if page_key is None:
        return Position(order, None)
    try:
        text = base64.urlsafe_b64decode(page_key + "=" * (-len(page_key) % 4)).decode()
        return Position(MARK_ORDERS[text[:1]], int(text[1:]))
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError):
        raise problems.bad_request("pageKey is invalid") from None


def walk(index: Index, at: Position) -> Iterator[str]:
    """The ids of ``index`` after position ``at``, in its order."""
    if at.order is ListOrder.OLDEST:
        start = 0 if at.after_seq is None else bisect.bisect_right(index, at.after_seq, key=_seq)
        for entry in index[start:]:
            yield entry[1]
        return
    end = len(index) if at.after_seq is None else bisect.bisect_left(index, at.after_seq, key=_seq)
    for offset in range(end - 1, -1, -1):
        yield index[offset][1]


def first_page(items: Iterable[S], size: int, order: ListOrder) -> Page[S]:
    """The first ``size`` of ``items``, and the key of the next page if there are more."""
    served: list[S] = []
    for item in items:
        if len(served) == size:
            return Page(served, encode_page_key(order, served[-1].seq))
        served.append(item)
    return Page(served, None)


def insert(index: Index, seq: int, item_id: str) -> None:
    """Put an entry in its place (appending, when it is the newest)."""
    if not index or index[-1][0] < seq:
        index.append((seq, item_id))
    else:
        bisect.insort(index, (seq, item_id))


def remove(index: Index, seq: int, item_id: str) -> None:
    """Take an entry out (found by bisection, not by a scan)."""
    offset = bisect.bisect_left(index, (seq, item_id))
    if offset < len(index) and index[offset] == (seq, item_id):
        del index[offset]


def _seq(entry: tuple[int, str]) -> int:
    return entry[0]
