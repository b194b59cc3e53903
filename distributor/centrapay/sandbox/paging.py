"""Listing pages: an opaque ``nextPageKey`` that the client passes back as ``pageKey``.

The key is the sequence number of the last item served, so a page is stable while new
items are added.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Iterable
from typing import TypeVar

from distributor.centrapay.sandbox import problems
from distributor.centrapay.sandbox.models import Asset, Page, Transfer

Index = list[tuple[int, str]]
"""(sequence number, id) pairs in sequence order: what a listing pages through."""

S = TypeVar("S", Asset, Transfer)


def encode_page_key(seq: int) -> str:
    """The opaque ``nextPageKey`` after the item with this sequence number."""
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_page_key(page_key: str | None) -> int:
    """The sequence number a ``pageKey`` continues after; 400 when it is not one of ours."""
    if page_key is None:
        return 0
    try:
        return int(base64.urlsafe_b64decode(page_key + "=" * (-len(page_key) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise problems.bad_request("pageKey is invalid") from None


def entries_after(index: Index, seq: int) -> Iterable[tuple[int, str]]:
    """The entries of ``index`` past sequence number ``seq``."""
    start = bisect.bisect_right(index, seq, key=lambda entry: entry[0])
    return index[start:]


def first_page(items: Iterable[S], size: int) -> Page[S]:
    """The first ``size`` of ``items``, and the key of the next page if there are more."""
    served: list[S] = []
    for item in items:
        if len(served) == size:
            return Page(served, encode_page_key(served[-1].seq))
        served.append(item)
    return Page(served, None)
