"""PNGs kept beside a job or a study: read one (or only its ETag), cache another size.

A record's plots hash holds the default-size PNGs its worker drew when it ended,
and the other sizes clients asked for, each with its strong ETag; the cache is
bounded per record and expires with it, and the other sizes of every record together
are bounded by one byte budget, the oldest dropped first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.experiment.jobs import JobStatus
from core.store.keys import Keys, RecordKeys, plot_etag_field, plot_field
from core.store.plans import Plan
from core.store.scripts.jobs import PUT_PLOT

# PNGs (sizes x plots, the default ones included) cached per job or study: bounds Redis
# memory whatever sizes clients ask for (the bytes of all of them together:
# core.store.plans.RENDER_CACHE_BYTES).
MAX_CACHED_PLOTS = 64


@dataclass(frozen=True, slots=True)
class StoredPlot:
    """A stored PNG and its ETag; on a miss, the record's status and default plot names."""

    etag: str | None = None
    png: bytes | None = None
    status: JobStatus | None = None
    names: tuple[str, ...] = ()


def png_etag(png: bytes) -> str:
    """The strong ETag of a PNG: a hash of its bytes, quoted."""
    return '"' + hashlib.blake2b(png, digest_size=16).hexdigest() + '"'


def default_plot_fields(plots: Mapping[str, bytes]) -> list[str | bytes]:
    """Plots hash field/value pairs for default-size PNGs (`name` -> PNG), ETags beside."""
    pairs: list[str | bytes] = []
    for name, png in plots.items():
        pairs += [plot_field(name), png, plot_etag_field(plot_field(name)), png_etag(png)]
    return pairs


def read_plot(keys: RecordKeys, *, field: str, body: bool = True) -> Plan[StoredPlot]:
    """A stored PNG (only its ETag when not `body`); on a miss, its record's status."""
    fields = [plot_etag_field(field), field] if body else [plot_etag_field(field)]

    def decode(reply: list[Any]) -> StoredPlot | Plan[StoredPlot]:
        etag, *png = reply[0]
        if etag is not None:
            return StoredPlot(etag=etag.decode(), png=png[0] if png else None)
        return Plan(miss, commands=[("HMGET", keys.record, "status", "plots")])

    def miss(reply: list[Any]) -> StoredPlot:
        status, names = reply[0]
        return StoredPlot(
            status=None if status is None else JobStatus(status.decode()),
            names=tuple(json.loads(names)) if names else (),
        )

    return Plan(decode, commands=[("HMGET", keys.plots, *fields)])


def cache_plot(
    keys: RecordKeys, renders: Keys, *, field: str, png: bytes, budget: int
) -> Plan[str | None]:
    """Cache a rendered PNG beside a finished record; its ETag, or None if not cached.

    A PNG at another size than the default counts against the deployment's render
    `budget` (bytes): past it, the oldest such renders are dropped as this one is stored.
    """
    etag = png_etag(png)
    sized = "@" in field  # keys.plot_field: a size beside the name
    args: list[str | bytes | int] = [
        field, png, plot_etag_field(field), etag, 2 * MAX_CACHED_PLOTS, budget if sized else "",
    ]  # fmt: skip
    return Plan(
        lambda reply: etag if reply == 1 else None,
        script=PUT_PLOT,
        keys=[keys.record, keys.plots, renders.renders, renders.render_sizes, renders.render_bytes],
        args=args,
    )
