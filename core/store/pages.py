"""Listing newest first, a page at a time, from an index of ids with equal scores.

Ids sort by creation time and every index member has the same score, so a page
is a lexicographic range below the cursor's id: stable under inserts. The
cursor a page hands out is the last id on it, opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.experiment.jobs import is_job_id
from core.store.plans import Plan

R = TypeVar("R")


class InvalidCursor(ValueError):  # noqa: N818
    """A list cursor this store did not hand out."""


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    """A page of records, newest first; `next_cursor` None on the last page."""

    items: list[R]
    next_cursor: str | None


def encode_cursor(record_id: str) -> str:
    """The opaque cursor that continues a listing after `record_id`."""
    return base64.urlsafe_b64encode(record_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor continues after; raises InvalidCursor."""
    try:
        record_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("cursor: not one this API handed out") from error
    if not is_job_id(record_id):
        raise InvalidCursor("cursor: not one this API handed out")
    return record_id


def newest_first(
    index: str,
    *,
    limit: int,
    cursor: str | None,
    read: Callable[[list[str], str | None], Page[R] | Plan[Page[R]]],
) -> Plan[Page[R]]:
    """A page of `index`: up to `limit` ids below `cursor`'s, handed to `read` (the ids
    and the next page's cursor) for their records. Raises InvalidCursor."""
    upper = "+" if cursor is None else "(" + decode_cursor(cursor)
    command = ("ZREVRANGEBYLEX", index, upper, "-", "LIMIT", 0, limit + 1)

    def page(reply: list[Any]) -> Page[R] | Plan[Page[R]]:
        members = reply[0]
        ids = [member.decode() for member in members[:limit]]
        if not ids:
            return Page([], None)
        return read(ids, encode_cursor(ids[-1]) if len(members) > limit else None)

    return Plan(page, commands=[command])
