"""One event stream following many experiments and studies: `GET /v1/events?ids=a,b`.

A page showing twenty jobs holds one connection, not twenty (browsers stall past
a handful of open streams per host over HTTP/1.1). Each id is checked as its
own route checks it (another owner's record is as unknown as an unknown id);
each event is that record's own, labelled with the record's id and kind; the
stream ends once every record has ended. A reconnect (Last-Event-ID) after
every record has ended is answered 204, which tells EventSource to stop;
otherwise it starts again from each record's first event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import (
    LastEventId,
    OpenStream,
    OwnerDep,
    ServicesDep,
    get_existing_job,
    get_existing_study,
)
from api.errors import EndOfStream, Problem, invalid_field
from api.schemas import FollowedEvent, StreamInterrupted, problem_responses
from api.services.streams import Followed, followed_job, followed_study

router = APIRouter(prefix="/events", tags=["events"])

Ids = Annotated[
    str,
    Query(
        min_length=1,
        max_length=4000,
        description="experiment and study ids, separated by commas",
        examples=["01JD8X3Q7R5M2N4P6T8V0W2Y4Z,01JD8X3Q7R5M2N4P6T8V0W2Y50"],
    ),
]


async def followed_records(
    ids: Ids, services: ServicesDep, owner: OwnerDep, last_event_id: LastEventId = None
) -> list[Followed]:
    """Each id checked as its own route checks it, followed from its first event; 204 on
    a reconnect once every one has ended."""
    wanted = list(dict.fromkeys(part.strip() for part in ids.split(",") if part.strip()))
    limit = services.settings.max_stream_ids
    if not wanted or len(wanted) > limit:
        raise invalid_field("ids", f"between 1 and {limit} ids, separated by commas")
    studies = services.studies
    followed = []
    all_ended = True
    for record_id in wanted:
        try:
            job = await get_existing_job(record_id, services, owner)
        except Problem:
            job = None
        if job is not None:
            target = followed_job(services.store, job.id, "0")
            all_ended = all_ended and job.status.finished
        else:
            try:
                study = await get_existing_study(record_id, studies, services, owner)
            except Problem as error:
                raise Problem(
                    404,
                    "Not found",
                    f"no experiment or study with id {record_id!r}",
                    kind="not-found",
                ) from error
            target = followed_study(studies, study.id, "0")
            all_ended = all_ended and study.status.finished
        followed.append(target)
    if last_event_id is not None and all_ended:
        raise EndOfStream()
    return followed


FollowedRecords = Annotated[list[Followed], Depends(followed_records)]


@router.get(
    "",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "text/event-stream of each record's events, labelled with its id "
            "(`data` is a FollowedEvent; the last event may be `interrupted`, a "
            "StreamInterrupted)",
            "content": {
                "text/event-stream": {
                    "itemSchema": {
                        "type": "object",
                        "properties": {
                            "event": {"type": "string"},
                            "id": {"type": "string"},
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": {
                                    "anyOf": [
                                        FollowedEvent.model_json_schema(),
                                        StreamInterrupted.model_json_schema(),
                                    ]
                                },
                            },
                        },
                    }
                }
            },
        },
        204: {"description": "every record had ended before Last-Event-ID"},
        **problem_responses(401, 404, 422, 429),
    },
)
async def follow_many(
    followed: FollowedRecords, streams: OpenStream
) -> AsyncIterator[ServerSentEvent]:
    """The events of several experiments and studies on one stream, until all have ended."""
    async for event in streams.events(followed, labelled=True):
        yield event
