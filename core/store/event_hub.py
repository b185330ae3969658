"""One blocking reader per process, fanning event streams out to every follower.

An event stream holding a Redis connection of its own (XREAD BLOCK) costs a
connection per open stream: a few thousand streams reach Redis' `maxclients`
and every other client is refused. Here one task of the process reads every
followed stream with one XREAD BLOCK over one connection, from the earliest
position any follower needs, and hands each follower the entries after its
own position. A new follower wakes the reader (CLIENT UNBLOCK, sent on the
shared connection) so its stream is read at once, history first.

When Redis goes away the reader ends every follower with the reason (each
stream then closes cleanly and its client reconnects with Last-Event-ID), and
reads again for followers that come after. A follower that falls too far
behind (its client reads slower than events come) is ended the same way.

Example:
    >>> hub = EventHub(redis.asyncio.Redis.from_url(url), wake=multiplexed.execute)
    >>> hub.start()
    >>> with hub.follow({"gradwatch:job:01J...:events": "0"}) as follower:
    ...     key, event = await follower.next(timeout=10.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import redis.asyncio

from core.store.errors import StoreError
from core.store.events import JobEvent, stream_entries, stream_position

logger = logging.getLogger(__name__)

# One XREAD waits this long for an entry before it is sent again (new followers wake it
# sooner); each of its streams gives at most ENTRIES_PER_READ entries.
BLOCK_MS = 2_000
ENTRIES_PER_READ = 100
# Entries a follower may have waiting before it counts as lagging and is ended.
FOLLOWER_BACKLOG = 2_000
# After Redis failed the reader, it waits this long before reading again.
RETRY_SECONDS = 1.0


class FollowEnded(Exception):  # noqa: N818 - the event it reports
    """The hub stopped serving a follower: Redis went away, or it fell too far behind."""


class Follower:
    """Entries of some streams, each after a position of its own, as the hub reads them."""

    def __init__(self, positions: Mapping[str, str]) -> None:
        self.positions = dict(positions)
        self._waiting: asyncio.Queue[tuple[str, JobEvent]] = asyncio.Queue()
        self.ended: str | None = None  # why the hub stopped serving it
        self._wakeup = asyncio.Event()

    async def next(self, *, timeout: float) -> tuple[str, JobEvent] | None:
        """The next (stream key, event); None after `timeout` seconds without one.

        Raises FollowEnded once the hub stopped serving it and nothing is left.
        """
        if self._waiting.empty():
            if self.ended is not None:
                raise FollowEnded(self.ended)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            if self._waiting.empty():
                if self.ended is not None:
                    raise FollowEnded(self.ended)
                return None
        return self._waiting.get_nowait()

    def _deliver(self, key: str, events: list[JobEvent]) -> None:
        after = stream_position(self.positions[key])
        for event in events:
            if stream_position(event.id) > after:
                self._waiting.put_nowait((key, event))
                self.positions[key] = event.id
        if self._waiting.qsize() > FOLLOWER_BACKLOG:
            self._end("the client reads slower than events come")
        self._wakeup.set()

    def _end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self._wakeup.set()


class EventHub:
    """Reads every followed stream over one connection and fans the entries out."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        wake: Callable[..., Awaitable[Any]],
        block_ms: int = BLOCK_MS,
    ) -> None:
        """`client` must hold a single connection (its CLIENT ID is woken by `wake`, a
        command sender on another connection)."""
        self._client = client
        self._wake_command = wake
        self._block_ms = block_ms
        self._followers: dict[str, set[Follower]] = {}
        self._changed = asyncio.Event()
        self._reader_id: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def following(self) -> int:
        """Streams followed now (each read once per XREAD, however many follow it)."""
        return len(self._followers)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._end_all("the API is shutting down")
        await self._client.aclose()

    @contextlib.contextmanager
    def follow(self, positions: Mapping[str, str]) -> Iterator[Follower]:
        """A follower of each stream key in `positions` after its stream id ("0": all)."""
        follower = Follower(positions)
        for key in positions:
            self._followers.setdefault(key, set()).add(follower)
        self._wake()
        try:
            yield follower
        finally:
            for key in positions:
                followers = self._followers.get(key)
                if followers is not None:
                    followers.discard(follower)
                    if not followers:
                        del self._followers[key]

    def _wake(self) -> None:
        """Have the reader read again now, with the streams followed now."""
        if self._changed.is_set():
            return
        self._changed.set()
        if self._reader_id is not None:
            reader_id, self._reader_id = self._reader_id, None  # one wake per read
            task = asyncio.get_running_loop().create_task(self._unblock(reader_id))
            task.add_done_callback(_retrieve)

    async def _unblock(self, reader_id: int) -> None:
        await self._wake_command("CLIENT", "UNBLOCK", reader_id)

    async def _run(self) -> None:
        while True:
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except StoreError as error:
                logger.warning("event streams lost Redis: %s", error)
                self._end_all("the store is unavailable")
                await asyncio.sleep(RETRY_SECONDS)

    async def _read_once(self) -> None:
        if not self._followers:
            self._changed.clear()
            await self._changed.wait()
        self._changed.clear()
        positions = {key: _earliest(key, followers) for key, followers in self._followers.items()}
        client_id = await self._client.execute_command("CLIENT", "ID")
        if not self._changed.is_set():
            self._reader_id = int(client_id)
            block = ["BLOCK", self._block_ms]
        else:  # followers came while asking: read without waiting
            block = []
        reply = await self._client.execute_command(
            "XREAD", "COUNT", ENTRIES_PER_READ, *block, "STREAMS", *positions, *positions.values()
        )
        self._reader_id = None
        for key, entries in _streams(reply):
            events = stream_entries(entries)
            for follower in list(self._followers.get(key, ())):
                follower._deliver(key, events)

    def _end_all(self, reason: str) -> None:
        for followers in self._followers.values():
            for follower in followers:
                follower._end(reason)


def _earliest(key: str, followers: set[Follower]) -> str:
    """The earliest position among the followers of stream `key`."""
    return min((follower.positions[key] for follower in followers), key=stream_position)


def _streams(reply: Any) -> list[tuple[str, Any]]:
    """(key, entries) of each stream in an XREAD reply (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    items = reply.items() if isinstance(reply, dict) else reply
    return [(key.decode() if isinstance(key, bytes) else key, entries) for key, entries in items]


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("waking the event reader failed: %s", task.exception())
