"""Event streams: what a job's or a study's stream keeps, and how a client reads it.

Each job and each study has a Redis stream of its changes (progress, state,
cancel requests; a study's children's state changes too). A client reads it
from where it left off (the id of the last event it saw, so a resumed SSE
connection with Last-Event-ID misses nothing), waiting a while for the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.experiment.limits import Limits
from core.experiment.studies import MAX_CHILDREN
from core.store.plans import Plan
from core.store.records import fields_of

# A stream entry per epoch plus a few state changes: the cap keeps every event of the
# longest allowed run, so a client resuming with Last-Event-ID never misses one.
EVENTS_MAXLEN = Limits.EPOCHS + 100
# Two state changes per child (running, finished) and the study's own: every event of
# the largest study fits.
STUDY_EVENTS_MAXLEN = 2 * MAX_CHILDREN + 20


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of an event stream: `progress`, `state`, `cancel_requested` or `child`."""

    id: str
    type: str
    data: str  # JSON


def read_stream(
    stream: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
) -> Plan[list[JobEvent]]:
    """Events of `stream` after stream id `after`, waiting up to `block_ms` for the first."""
    command: list[str | int] = ["XREAD", "COUNT", count]
    if block_ms is not None:
        command += ["BLOCK", block_ms]
    command += ["STREAMS", stream, after]

    def decode(reply: list[Any]) -> list[JobEvent]:
        if not reply[0]:
            return []
        _, entries = reply[0][0]
        return stream_entries(entries)

    return Plan(decode, commands=[command], blocking=block_ms is not None)


def stream_entries(entries: Sequence[Any]) -> list[JobEvent]:
    """The events of one stream's entries in an XREAD reply."""
    events = []
    for entry_id, data in entries:
        fields = fields_of(data)
        events.append(
            JobEvent(entry_id.decode(), fields[b"type"].decode(), fields[b"data"].decode())
        )
    return events


def stream_position(entry_id: str) -> tuple[int, int]:
    """A stream id (`1732000000123-0`) as numbers, which order as the stream does."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
