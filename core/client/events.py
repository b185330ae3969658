"""Server-Sent Events read from a response's lines (the subset the service writes)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its type (`progress`, `state`, `child`, ...), its JSON data and id."""

    type: str
    data: dict[str, Any]
    id: str | None

    @property
    def final(self) -> bool:
        """True for the state event that ends a job or a study."""
        return self.type == "state" and self.data.get("status") in FINAL_STATUSES


FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """The events in a text/event-stream, one per blank-line-terminated block."""
    kind, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(kind, json.loads("\n".join(data)), event_id)
            kind, data, event_id = "message", [], None
            continue
        if line.startswith(":"):  # a comment: the server's keep-alive
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
