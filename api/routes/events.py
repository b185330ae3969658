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

from api.deps import ExistingJob, LastEventId, OpenStream, StoreDep
from api.schemas import stream_responses
from api.services.streams import followed_job, resume_after
from core.store.records import JobRecord

router = APIRouter(prefix="/experiments", tags=["events"])


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
    responses=stream_responses("`state`, `progress`, `cancel_requested`", 401, 404, 429),
)
async def stream_events(
    start: ResumePoint, store: StoreDep, streams: OpenStream
) -> AsyncIterator[ServerSentEvent]:
    """Progress and state of an experiment as Server-Sent Events, until it finishes."""
    job, after = start
    async for event in streams.events([followed_job(store, job.id, after)], labelled=False):
        yield event
