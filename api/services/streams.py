"""Event streams of an API process: where one starts, which event ends it, how many may
be open, and what each one sends.

Every stream of the process is read by one reader (core.store.event_hub), so
open streams cost no Redis connection each. They still cost the process memory
and a socket: at most `max_streams_per_owner` per owner (429) and
`max_streams_per_process` in all (503), both with Retry-After. A stream sends
an SSE comment when it has been silent for `stream_heartbeat_seconds`, so that
proxies keep it open, and ends with an `interrupted` event (never an error in
the middle of an event) when Redis goes away; its client reconnects with
Last-Event-ID once Redis is back.

One stream follows one job, one study, or several of either
(`GET /v1/events?ids=...`): each followed record has a `Followed`, which says
where its events are and how to tell that it ended when its events say nothing.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import orjson
from fastapi.sse import ServerSentEvent

from api.errors import EndOfStream, Problem
from core.experiment.jobs import FINISHED
from core.settings import Settings
from core.store.connections import reader_client
from core.store.errors import is_store_unavailable
from core.store.event_hub import EventHub, FollowEnded
from core.store.events import JobEvent
from core.store.stores import AsyncJobStore

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_FINISHED = {status.value for status in FINISHED}
# Seconds of silence after which a stream checks that its job still exists; a study's
# is checked more often, as reading it adds its children's changes to its stream.
JOB_CHECK_SECONDS = 10.0
STUDY_CHECK_SECONDS = 0.5


async def resume(target: Followed, last_event_id: str | None, *, finished: bool) -> Followed:
    """`target`, read from after a Last-Event-ID that is a stream id, else from its start.

    Raises EndOfStream (a 204) when the record `finished` and its stream has nothing
    after that id: the client read the stream to its end already.
    """
    after = last_event_id if last_event_id and _STREAM_ID.match(last_event_id) else "0"
    if finished and after != "0" and not await target.events_after(after):
        raise EndOfStream()
    return replace(target, after=after)


def is_final(event_type: str, data: str) -> bool:
    """True for the state event that ends a job or a study."""
    return event_type == "state" and orjson.loads(data).get("status") in _FINISHED


Kind = Literal["experiment", "study"]
# What a record's idle check found: None (nothing to say yet), "gone" (deleted or
# expired: its stream ends with nothing more), or the data of the state event that
# ends it (it finished, and the event that said so is no longer in its stream).
IdleOutcome = Literal["gone"] | dict[str, str] | None


@dataclass
class Followed:
    """One record a stream follows: its event stream, and how to check it when idle."""

    id: str
    kind: Kind
    key: str  # its Redis stream
    after: str  # the stream id to read after ("0": from the start)
    check: Callable[[str], Awaitable[IdleOutcome]]  # given the position read so far
    check_every: float  # seconds of silence between two checks
    events_after: Callable[[str], Awaitable[list[JobEvent]]]  # at most one, after a position
    checked_at: float = 0.0


class StreamGate:
    """Counts the open streams of the process, per owner and in all.

    The counts are this process's alone: with N API processes an owner may hold N x
    `per_owner` streams in all. What a stream costs (memory, a socket, a share of the
    process's reader) is its process's, so that is where it is bounded; the README
    (Reliability, event streams) says why no count is shared in Redis.
    """

    def __init__(self, *, per_owner: int, per_process: int, retry_after: int) -> None:
        self.per_owner = per_owner
        self.per_process = per_process
        self.retry_after = retry_after
        self._open: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return self._open.total()

    @contextlib.contextmanager
    def admit(self, owner: str) -> Iterator[None]:
        """Hold one stream of `owner` open; a 429 or 503 problem when over a cap."""
        if self._open.total() >= self.per_process:
            raise self._refusal(
                503, "Too many open streams", f"this server holds {self.per_process} streams"
            )
        if self._open[owner] >= self.per_owner:
            detail = f"at most {self.per_owner} open event streams per owner: close one first"
            raise self._refusal(429, "Too many open streams", detail)
        self._open[owner] += 1
        try:
            yield
        finally:
            self._open[owner] -= 1
            if not self._open[owner]:
                del self._open[owner]

    def _refusal(self, status: int, title: str, detail: str) -> Problem:
        headers = {"Retry-After": str(self.retry_after)}
        return Problem(status, title, detail, kind="too-many-streams", headers=headers)


@dataclass
class Streams:
    """The process's event reader, its gate and how long a stream may stay silent."""

    hub: EventHub
    gate: StreamGate
    heartbeat_seconds: float
    retry_after: int

    @classmethod
    def from_settings(cls, settings: Settings, store: AsyncJobStore) -> Streams:
        hub = EventHub(reader_client(settings.redis_url), wake=store.multiplexed.execute)
        gate = StreamGate(
            per_owner=settings.max_streams_per_owner,
            per_process=settings.max_streams_per_process,
            retry_after=settings.stream_retry_after_seconds,
        )
        return cls(
            hub, gate, settings.stream_heartbeat_seconds, settings.stream_retry_after_seconds
        )

    async def events(
        self, followed: Sequence[Followed], *, labelled: bool
    ) -> AsyncIterator[ServerSentEvent]:
        """The events of `followed` until each has ended; `labelled` names the record in
        each event (a stream of several)."""
        by_key = {target.key: target for target in followed}
        active = dict(by_key)
        silent_since = time.monotonic()
        with self.hub.follow({target.key: target.after for target in followed}) as follower:
            while active:
                now = time.monotonic()
                wait = min(target.check_every for target in active.values())
                try:
                    arrived = await follower.next(timeout=min(wait, self.heartbeat_seconds))
                    if arrived is None:
                        for target in list(active.values()):
                            if now - target.checked_at < target.check_every:
                                continue
                            target.checked_at = now
                            outcome = await target.check(follower.positions[target.key])
                            if outcome is None:
                                continue
                            del active[target.key]
                            if outcome != "gone":
                                silent_since = now
                                yield self._sse(target, "state", outcome, None, labelled)
                        if time.monotonic() - silent_since >= self.heartbeat_seconds:
                            silent_since = time.monotonic()
                            yield ServerSentEvent(comment="heartbeat")
                        continue
                except FollowEnded as ended:
                    yield self._interrupted(str(ended))
                    return
                except Exception as error:
                    if not is_store_unavailable(error):
                        raise
                    yield self._interrupted("the store is unavailable")
                    return
                key, event = arrived
                target = by_key[key]
                silent_since = now
                yield self._sse(target, event.type, event.data, event.id, labelled)
                if is_final(event.type, event.data):
                    active.pop(key, None)

    def _sse(
        self,
        target: Followed,
        event_type: str,
        data: str | dict[str, str],
        entry_id: str | None,
        labelled: bool,
    ) -> ServerSentEvent:
        raw = data if isinstance(data, str) else orjson.dumps(data).decode()
        if not labelled:
            return ServerSentEvent(raw_data=raw, event=event_type, id=entry_id)
        labelled_raw = f'{{"id":"{target.id}","kind":"{target.kind}","data":{raw}}}'
        event_id = None if entry_id is None else f"{target.id}/{entry_id}"
        return ServerSentEvent(raw_data=labelled_raw, event=event_type, id=event_id)

    def _interrupted(self, reason: str) -> ServerSentEvent:
        """The last event of a stream the server stopped serving: reconnect later."""
        return ServerSentEvent(
            data={"detail": f"{reason}: reconnect with Last-Event-ID to continue"},
            event="interrupted",
            retry=self.retry_after * 1000,
        )


def followed_job(store: AsyncJobStore, job_id: str, after: str = "0") -> Followed:
    """A job as a stream follows it: when silent, gone or finished per its record."""

    async def check(_: str) -> IdleOutcome:
        record = await store.get(job_id)
        if record is None:  # deleted, or expired
            return "gone"
        if record.status.finished:  # its events are gone: still say how it ended
            return {"status": record.status.value}
        return None

    async def events_after(position: str) -> list[JobEvent]:
        return await store.read_events(job_id, after=position, count=1)

    key = store.plans.keys.job(job_id).events
    return Followed(job_id, "experiment", key, after, check, JOB_CHECK_SECONDS, events_after)


def followed_study(store: AsyncJobStore, study_id: str, after: str = "0") -> Followed:
    """A study as a stream follows it: when silent, its children are read (which adds
    their changes to its stream), and it is gone or finished per its record."""

    async def check(position: str) -> IdleOutcome:
        record = await store.get_study(study_id)
        if record is None:  # deleted, or expired
            return "gone"
        if record.status.finished and not await events_after(position):
            return {"status": record.status.value}  # its events are gone: still say how it ended
        return None

    async def events_after(position: str) -> list[JobEvent]:
        return await store.read_study_events(study_id, after=position, count=1)

    key = store.plans.keys.study(study_id).events
    return Followed(study_id, "study", key, after, check, STUDY_CHECK_SECONDS, events_after)
