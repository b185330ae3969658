"""Server-Sent Events of one experiment: per-epoch progress and state changes, resumable.

Events come from the job's Redis stream, so every client (and every API
process) sees the same sequence with the same ids. A client that reconnects
with `Last-Event-ID` continues after that event; the stream ends after the
final state (succeeded, failed or cancelled), and a reconnect past that end is
answered 204, which tells a browser's EventSource to stop.

    event: progress
    data: {"epoch":3,"epochs":100,"loss":0.69,"accuracy":0.52}
    id: 1732000000123-0
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import JobStream, OpenStream
from api.schemas import stream_responses

router = APIRouter(prefix="/experiments", tags=["events"])


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses=stream_responses("`state`, `progress`, `cancel_requested`", 401, 404, 429),
)
async def stream_events(job: JobStream, streams: OpenStream) -> AsyncIterator[ServerSentEvent]:
    """Progress and state of an experiment as Server-Sent Events, until it finishes."""
    async for event in streams.events([job], labelled=False):
        yield event
