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
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import ExistingJob, LastEventId, StoreDep
from api.schemas import problem_responses
from api.services.streams import is_final, resume_after
from core.store.records import JobRecord

router = APIRouter(prefix="/experiments", tags=["events"])

# How long one XREAD waits before checking that the job still exists.
BLOCK_MS = 10_000


async def resume_point(
    job: ExistingJob, store: StoreDep, last_event_id: LastEventId = None
) -> tuple[JobRecord, str]:
    """The job and the stream id to read after; 204 when a finished stream was fully read."""
    after = await resume_after(
        last_event_id,
        finished=job.status.finished,
        events_after=lambda after: store.read_events(job.id, after=after, count=1),
    )
    return job, after


ResumePoint = Annotated[tuple[JobRecord, str], Depends(resume_point)]


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "text/event-stream of `state`, `progress`, `cancel_requested`"},
        204: {"description": "the stream already ended before Last-Event-ID"},
        **problem_responses(401, 404),
    },
)
async def stream_events(start: ResumePoint, store: StoreDep) -> AsyncIterator[ServerSentEvent]:
    """Progress and state of an experiment as Server-Sent Events, until it finishes."""
    job, after = start
    while True:
        events = await store.read_events(job.id, after=after, block_ms=BLOCK_MS)
        for event in events:
            after = event.id
            yield ServerSentEvent(raw_data=event.data, event=event.type, id=event.id)
            if is_final(event.type, event.data):
                return
        if not events:
            record = await store.get(job.id)
            if record is None:  # deleted, or expired
                return
            if record.status.finished:  # its events are gone: still say how it ended
                yield ServerSentEvent(data={"status": record.status.value}, event="state")
                return
