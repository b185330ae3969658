"""What /metrics counts, read in one round trip: jobs per status, the queues' depths and
the durations of finished jobs.

A queue's depth is the jobs waiting for a worker: those on its dispatcher
(core.store.dispatch), cancelled ones already out, and any message sent straight to
its Celery queue (by a client of an earlier release) that no worker has taken yet.

    metrics(*, queues) -> MetricsSnapshot
    ping() -> bool
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.experiment.jobs import JobStatus
from core.store.jobs import JobPlans
from core.store.plans import Plan, after
from core.store.records import fields_of
from core.store.scripts.jobs import DURATION_BUCKETS


@dataclass(frozen=True, slots=True)
class DurationStats:
    """A duration histogram: cumulative counts per upper bound (`+Inf` last), sum, count."""

    buckets: list[tuple[str, int]]
    total: float
    count: int


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Counts for /metrics, read in one round trip."""

    jobs_by_status: dict[JobStatus, int]
    queue_depths: dict[str, int]
    durations: dict[JobStatus, DurationStats] = field(default_factory=dict)


def _durations(fields: Mapping[bytes, bytes]) -> dict[JobStatus, DurationStats]:
    labels = [f"{bound:g}" for bound in DURATION_BUCKETS] + ["+Inf"]
    histograms = {}
    for status in (s for s in JobStatus if s.finished):
        prefix = status.value + ":"
        counts = [int(fields.get((prefix + label).encode(), 0)) for label in labels]
        cumulative = [sum(counts[: i + 1]) for i in range(len(counts))]
        histograms[status] = DurationStats(
            buckets=list(zip(labels, cumulative, strict=True)),
            total=float(fields.get((prefix + "sum").encode(), 0.0)),
            count=int(fields.get((prefix + "count").encode(), 0)),
        )
    return histograms


class MetricsPlans(JobPlans):
    """The deployment's counts, as plans."""

    def metrics(self, *, queues: Sequence[str]) -> Plan[MetricsSnapshot]:
        """Jobs per status, queue depths (jobs waiting for a worker) and job durations
        (after a prune)."""
        commands: list[tuple[str, ...]] = [("ZCARD", key) for key in self.keys.by_status]
        for queue in queues:
            commands.append(("ZCARD", self.keys.dispatcher(queue).waiting))
            commands.append(("LLEN", self.keys.celery_queue(queue)))
        commands.append(("HGETALL", self.keys.durations))

        def decode(reply: list[Any]) -> MetricsSnapshot:
            counts = dict(zip(JobStatus, reply, strict=False))
            waiting = reply[len(JobStatus) : -1]
            depths = {
                queue: waiting[2 * index] + waiting[2 * index + 1]
                for index, queue in enumerate(queues)
            }
            return MetricsSnapshot(counts, depths, _durations(fields_of(reply[-1])))

        return after(self.prune_expired(), Plan(decode, commands=commands, atomic=True))

    def ping(self) -> Plan[bool]:
        """True when Redis answers."""
        return Plan(lambda reply: bool(reply[0]), commands=[("PING",)])
