"""A store operation as data: the one Redis round trip it needs and how to read the reply.

Every operation of the store is a pure function from its arguments to a `Plan`:
a Lua script (core.store.scripts) called with keys and arguments, or a few
commands sent as one pipeline, plus `decode`, which turns the reply into the
result or into the next Plan when the operation needs another round trip. The
executors (core.store.stores) run plans over a blocking or an asyncio
connection, so both front ends share every operation as written once.

The operations come in families, one module each (jobs, admission, workers,
outbox, metrics, studies), every family a subclass of `Plans`, which holds what
they all need: the namespace's keys and the deployment's TTLs. The families
that run job scripts (workers, outbox, metrics) extend `JobPlans`
(core.store.jobs), which knows the key layout those scripts take.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from core.store.keys import Keys
from core.store.scripts import LuaScript

T = TypeVar("T")
Arg = str | bytes | int | float

# A worker that beat within this many seconds is live, unless the settings say otherwise
# (`Settings.worker_silent_seconds`: the silence after which a reaper counts it lost).
LIVE_WORKER_SECONDS = 30.0
# The bytes of PNGs cached at other sizes than the default, across every job and study,
# unless the settings say otherwise (`Settings.render_cache_megabytes`).
RENDER_CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    """One Redis round trip and how to read its reply.

    Either a Lua `script` called with `keys` and `args`, or `commands` sent as one
    pipeline (MULTI/EXEC when `atomic`; the reply is then a list, one entry per
    command). `decode` turns the reply into the result, or into the next Plan when
    an operation needs another round trip.
    """

    decode: Callable[[Any], T | Plan[T]]
    script: LuaScript | None = None
    keys: Sequence[str] = ()
    args: Sequence[Arg] = ()
    commands: Sequence[Sequence[Arg]] = ()
    atomic: bool = False
    blocking: bool = False  # holds its connection while Redis waits (XREAD BLOCK)


def after(first: Plan[Any], outcome: T | Plan[T]) -> Plan[T]:
    """`first` run for its effect, then `outcome`: a value, or the next plan."""
    return dataclasses.replace(first, decode=lambda _: outcome)


def done(_: Any) -> None:
    """The decode of a plan run for its effect alone."""
    return None


def applied(reply: Any) -> bool:
    """The decode of a script that replies 1 when it changed something, else 0."""
    return bool(reply == 1)


def optional(number: int | None) -> str | int:
    """A number for a script argument that may be absent ('': not given)."""
    return "" if number is None else number


class Plans:
    """The base of every family of plans: the namespace's keys and the deployment's TTLs."""

    def __init__(
        self,
        keys: Keys,
        *,
        job_ttl_seconds: int,
        idempotency_ttl_seconds: int,
        live_worker_seconds: float = LIVE_WORKER_SECONDS,
        render_cache_bytes: int = RENDER_CACHE_BYTES,
    ) -> None:
        self.keys = keys
        self.render_cache_bytes = render_cache_bytes
        self.job_ttl_seconds = job_ttl_seconds
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        self.live_worker_seconds = live_worker_seconds
