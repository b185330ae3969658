"""Plots rendered on demand, off the event loop.

Rendering a PNG takes tens to hundreds of milliseconds of CPU in matplotlib:
it runs in worker threads, at most `concurrency` at once, and concurrent
requests for the same plot and size share one render.
"""

from __future__ import annotations

import asyncio
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
