"""What an experiment's event stream and a study's share: where a resumed stream starts,
and which event ends it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from api.errors import EndOfStream
from core.experiment.jobs import FINISHED

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_FINISHED = {status.value for status in FINISHED}


async def resume_after(
    last_event_id: str | None,
    *,
    finished: bool,
    events_after: Callable[[str], Awaitable[Any]],
) -> str:
    """The stream id to read after: a Last-Event-ID that is one, else the stream's start.

    Raises EndOfStream (a 204) when the record `finished` and `events_after` that id
    finds nothing: the client read the stream to its end already.
    """
    after = last_event_id if last_event_id and _STREAM_ID.match(last_event_id) else "0"
    if finished and after != "0" and not await events_after(after):
        raise EndOfStream()
    return after


def is_final(event_type: str, data: str) -> bool:
    """True for the state event that ends a job."""
    return event_type == "state" and orjson.loads(data).get("status") in _FINISHED
