"""Plots rendered on demand, off the event loop, and what is known without rendering.

Rendering a PNG takes tens to hundreds of milliseconds of CPU in matplotlib:
it runs in worker threads, at most `concurrency` at once, and concurrent
requests for the same plot and size share one render. At most `max_pending`
distinct renders run or wait at a time: one more is refused with a 503 and
Retry-After, so a flood of odd sizes cannot queue without bound and hold the
API's memory and threads.

A render is deterministic (core.plotting.sources: the same result and size give the same
bytes), and a finished job's result never changes, so `render_etag` names a
render's bytes without drawing them: a PNG the job store did not keep (its
per-job cache is full) still answers a matching If-None-Match with 304, at no
cost, on any API process of the same deployment.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable

import anyio
import anyio.to_thread

from api.errors import Problem

# Distinct renders running or waiting at once, per API process.
MAX_PENDING_RENDERS = 16
RENDER_RETRY_AFTER = "2"


class PlotRenderer:
    """Runs render functions in threads, a few at a time, once per key at a time."""

    def __init__(self, *, concurrency: int = 2, max_pending: int = MAX_PENDING_RENDERS) -> None:
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._max_pending = max(max_pending, concurrency)
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    async def render(self, key: str, draw: Callable[[], bytes]) -> bytes:
        """The PNG `draw` returns; a request for a `key` already rendering waits for it.

        Raises a 503 problem when `max_pending` other renders are running or waiting.
        """
        task = self._inflight.get(key)
        if task is None:
            if len(self._inflight) >= self._max_pending:
                raise renderer_busy(len(self._inflight))
            task = asyncio.ensure_future(anyio.to_thread.run_sync(draw, limiter=self._limiter))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: a client that hangs up must not cancel a render others wait for.
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Future[bytes]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not logged twice


def renderer_busy(pending: int) -> Problem:
    """503 with Retry-After: this process has as many renders running or waiting as it takes."""
    return Problem(
        503,
        "Too busy rendering",
        f"{pending} plots are being drawn or waiting to be; try again shortly",
        kind="render-busy",
        headers={"Retry-After": RENDER_RETRY_AFTER},
    )


def render_etag(key: str) -> str:
    """The strong ETag of the PNG rendered for `key` (e.g. `<job id>/<plot field>`).

    A hash of the key and of the renderer, not of the bytes: the same for every
    render of that key by the same code, known before (or without) rendering.
    """
    # The drawing code and libraries a render's bytes depend on, as the plotting
    # package finds them; read without loading matplotlib.
    from core.plotting.sources import renderer_identity

    digest = hashlib.blake2b(key.encode(), digest_size=16, key=renderer_identity())
    return '"r' + digest.hexdigest() + '"'


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
