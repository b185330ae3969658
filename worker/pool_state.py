"""What a worker's pool process tells its main process: whether it is warm, and which
networks it holds compiled.

The pool process loads the engine and trains; the heartbeat (worker.heartbeat)
runs in the main process, which must never load TensorFlow. They share one
page of memory, mapped when the worker's app is made, before Celery forks the
pool, so every pool process (a replacement too) writes where the main process
reads: no file, no Redis round trip, a read costs microseconds. The pool
process writes a small JSON document (`PoolState`); a sequence number around
each write lets a reader that raced a write try again rather than read half
of it. A pool process killed mid-write leaves the page unreadable (read as not
ready, nothing warm) until the next write, by its replacement, which starts afresh.

With several pool processes (more than the one a worker runs by default) the
last to write is what the main process reads.

Example:
    >>> publish(PoolState(ready=True, warm=[("3f2a9c0d1e4b5a67", 1, True)]))   # pool process
    >>> read().ready                                                          # main process
    True
"""

from __future__ import annotations

import json
import mmap
import struct
import time
from dataclasses import dataclass, field

# One page: a header (sequence number, length) and the document.
_SIZE = mmap.PAGESIZE
_HEADER = struct.Struct("<II")
_page = mmap.mmap(-1, _SIZE)  # anonymous and shared: forked processes see one page


@dataclass(frozen=True)
class PoolState:
    """`ready`: the engine is loaded and a graph traced, so a job trains at once.
    `warm`: (graph signature, members, on XLA) of each network held compiled, most
    recently used first (core.engine.graph_cache.warm_graphs)."""

    ready: bool = False
    warm: list[tuple[str, int, bool]] = field(default_factory=list)


def publish(state: PoolState) -> None:
    """Write `state` for the main process (from a pool process); warm networks that do not
    fit the page are left out, the least recently used first."""
    warm = list(state.warm)
    while True:
        payload = json.dumps({"ready": state.ready, "warm": warm}).encode()
        if _HEADER.size + len(payload) <= _SIZE or not warm:
            break
        warm.pop()
    sequence = _HEADER.unpack_from(_page, 0)[0]
    # Odd: a pool process was killed mid-write. Its write is void; this one starts afresh
    # (were it to go on from an odd number, every write would end odd, unreadable).
    sequence += sequence % 2
    _HEADER.pack_into(_page, 0, sequence + 1, 0)  # odd: a write is under way
    _page[_HEADER.size : _HEADER.size + len(payload)] = payload
    _HEADER.pack_into(_page, 0, sequence + 2, len(payload))


def read() -> PoolState:
    """The last state a pool process published (not ready, nothing warm, before any)."""
    for _ in range(100):
        sequence, length = _HEADER.unpack_from(_page, 0)
        if sequence % 2 == 0:
            payload = bytes(_page[_HEADER.size : _HEADER.size + length])
            if _HEADER.unpack_from(_page, 0)[0] == sequence:
                if not payload:
                    return PoolState()
                document = json.loads(payload)
                warm = [(str(s), int(m), bool(x)) for s, m, x in document["warm"]]
                return PoolState(ready=bool(document["ready"]), warm=warm)
        time.sleep(0.0001)
    return PoolState()
