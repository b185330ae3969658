"""Every dependency of the routes, once, as an `Annotated` alias.

A route's signature then reads like a sentence:
`async def read_experiment(job_id: JobId, store: StoreDep) -> Response`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, Path, Request

from api.errors import job_not_found
from api.rendering import PlotRenderer
from core.jobs import JobRecord, is_job_id
from core.settings import Settings
from core.store import AsyncJobStore


@dataclass(frozen=True, slots=True)
class Services:
    """What the app opens at startup and every request shares."""

    settings: Settings
    store: AsyncJobStore
    celery: Celery
    renderer: PlotRenderer


# Async, though they only read app state: FastAPI runs a plain `def` dependency in a
# worker thread, which would cost more than the whole Redis round trip of a request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_store(request: Request) -> AsyncJobStore:
    services: Services = request.app.state.services
    return services.store


async def get_settings_of_app(request: Request) -> Settings:
    services: Services = request.app.state.services
    return services.settings


ServicesDep = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[AsyncJobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]

JobId = Annotated[
    str,
    Path(description="the experiment's id (a ULID)", examples=["01JD8X3Q7R5M2N4P6T8V0W2Y4Z"]),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="repeat a POST safely: the same key and body return the first job",
    ),
]


async def get_existing_job(job_id: JobId, store: StoreDep) -> JobRecord:
    """The job's record, or a 404 problem."""
    record = await store.get(job_id) if is_job_id(job_id) else None
    if record is None:
        raise job_not_found(job_id)
    return record


ExistingJob = Annotated[JobRecord, Depends(get_existing_job)]
