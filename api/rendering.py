"""Plots rendered on demand, off the event loop, and which plots a result can give.

Rendering a PNG takes tens to hundreds of milliseconds of CPU in matplotlib:
it runs in worker threads, at most `concurrency` at once, and concurrent
requests for the same plot and size share one render.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

import anyio
import anyio.to_thread


class PlotRenderer:
    """Runs render functions in threads, a few at a time, once per key at a time."""

    def __init__(self, *, concurrency: int = 2) -> None:
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    async def render(self, key: str, draw: Callable[[], bytes]) -> bytes:
        """The PNG `draw` returns; a request for a `key` already rendering waits for it."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(anyio.to_thread.run_sync(draw, limiter=self._limiter))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: a client that hangs up must not cancel a render others wait for.
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Future[bytes]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not logged twice


class PlotIndex:
    """Which plots each succeeded job's result has numbers for, remembered per process.

    A finished job's result never changes, so the answer stays true; the oldest
    entries are forgotten past `size` jobs.
    """

    def __init__(self, *, size: int = 4096) -> None:
        self._size = size
        self._names: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def get(self, job_id: str) -> tuple[str, ...] | None:
        names = self._names.get(job_id)
        if names is not None:
            self._names.move_to_end(job_id)
        return names

    def remember(self, job_id: str, names: tuple[str, ...]) -> None:
        self._names[job_id] = names
        self._names.move_to_end(job_id)
        while len(self._names) > self._size:
            self._names.popitem(last=False)
