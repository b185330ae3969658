"""Probes and metrics: /healthz (alive), /readyz (Redis and workers), /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import anyio
import redis
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from starlette.responses import Response

from api.deps import ServicesDep
from api.errors import store_unavailable
from api.responses import FastJSONResponse
from api.schemas import Health, Readiness
from core.settings import Settings
from core.spec import Device
from core.store import MetricsSnapshot

router = APIRouter(tags=["health"])

PROBE_TIMEOUT = 2.0


def queues(settings: Settings) -> list[str]:
    return [settings.queue_for(device) for device in Device]


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is up."""
    return FastJSONResponse({"status": "ok"})


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep) -> Response:
    """Redis answers (else 503); lists the live workers of each queue from their heartbeats.

    `auth` says whether API keys guard the jobs (`keys`) or every client sees all (`open`).
    """
    store = services.store
    auth = services.access.mode
    try:
        with anyio.fail_after(PROBE_TIMEOUT):
            await store.ping()
            workers = {
                queue: await store.live_workers(queue=queue) for queue in queues(services.settings)
            }
    except (redis.RedisError, OSError, TimeoutError):
        body = {"status": "unavailable", "auth": auth, "redis": False, "workers": {}}
        return FastJSONResponse(body, status_code=503, headers=dict(store_unavailable().headers))
    return FastJSONResponse({"status": "ready", "auth": auth, "redis": True, "workers": workers})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(services: ServicesDep) -> Response:
    """Jobs by status, Celery queue depth, live workers and job durations, for Prometheus."""
    names = queues(services.settings)
    snapshot = await services.store.metrics(queues=names)
    workers = {queue: len(await services.store.live_workers(queue=queue)) for queue in names}
    body = generate_latest(_Families(list(metric_families(snapshot, workers))))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Families:
    """A collector that yields metric families already read (what generate_latest needs)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def metric_families(snapshot: MetricsSnapshot, workers: dict[str, int]) -> Iterator[Metric]:
    """The Prometheus families of a store snapshot."""
    jobs = GaugeMetricFamily("gradwatch_jobs", "Jobs in the store by status", labels=["status"])
    for status, count in snapshot.jobs_by_status.items():
        jobs.add_metric([status.value], count)
    yield jobs
    depth = GaugeMetricFamily(
        "gradwatch_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
    )
    for queue, count in snapshot.queue_depths.items():
        depth.add_metric([queue], count)
    yield depth
    live = GaugeMetricFamily(
        "gradwatch_live_workers", "Workers with a recent heartbeat", labels=["queue"]
    )
    for queue, count in workers.items():
        live.add_metric([queue], count)
    yield live
    durations = HistogramMetricFamily(
        "gradwatch_job_duration_seconds",
        "Seconds from start to finish of finished jobs",
        labels=["status"],
    )
    for status, stats in snapshot.durations.items():
        durations.add_metric([status.value], stats.buckets, sum_value=stats.total)
    yield durations
