"""Probes and metrics: /healthz (alive), /readyz (Redis and workers), /metrics (Prometheus).

None needs an API key, so a Kubernetes probe can call them; what each shows to whom
is in api.access.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import anyio
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from pydantic import BaseModel, Field
from starlette.responses import Response

from api.deps import MetricsScraper, OptionalOwner, ServicesDep
from api.errors import store_unavailable
from api.responses import FastJSONResponse
from api.schemas import Health, problem_responses
from core.experiment.spec import Device
from core.settings import Settings
from core.store.errors import StoreError
from core.store.metrics import MetricsSnapshot

router = APIRouter(tags=["health"])

PROBE_TIMEOUT = 2.0


def queues(settings: Settings) -> list[str]:
    return [settings.queue_for(device) for device in Device]


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is up."""
    return FastJSONResponse({"status": "ok"})


class Readiness(BaseModel):
    """What /readyz shows: the live workers' hosts only to a request that may see them."""

    status: str = Field(description="ready, or unavailable when Redis does not serve")
    auth: str = Field(description="open (no API keys: every client sees every job) or keys")
    redis: bool
    live_workers: dict[str, int] = Field(description="queue -> how many workers are live")
    workers: dict[str, list[str]] | None = Field(
        None,
        description="queue -> hostnames of live workers: in keys mode only with a valid key",
    )


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep, owner: OptionalOwner) -> Response:
    """Redis answers (else 503, with Retry-After); how many workers of each queue are live.

    `auth` says whether API keys guard the jobs (`keys`) or every client sees all
    (`open`). No key is needed; `workers` names the live workers' hosts only in open
    mode or to a request with a valid key.
    """
    store = services.store
    body: dict[str, Any] = {"auth": services.access.mode}
    try:
        with anyio.fail_after(PROBE_TIMEOUT):
            await store.ping()
            hosts = {
                queue: await store.live_workers(queue=queue) for queue in queues(services.settings)
            }
    except (StoreError, OSError, TimeoutError):
        body.update(status="unavailable", redis=False, live_workers={})
        if owner is not None:
            body["workers"] = {}
        return FastJSONResponse(body, status_code=503, headers=dict(store_unavailable().headers))
    body.update(status="ready", redis=True)
    body["live_workers"] = {queue: len(names) for queue, names in hosts.items()}
    if owner is not None:
        body["workers"] = hosts
    return FastJSONResponse(body)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[MetricsScraper],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        **problem_responses(401),
    },
)
async def metrics(services: ServicesDep) -> Response:
    """Jobs by status, queue depth (jobs waiting for a worker), live workers and job durations,
    for Prometheus.

    With GRADWATCH_METRICS_TOKEN set, send it as `Authorization: Bearer <token>`.
    """
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
        "gradwatch_queue_depth", "Jobs waiting for a worker, by queue", labels=["queue"]
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
