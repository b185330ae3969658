"""Every dependency of the routes, once, as an `Annotated` alias.

A route's signature then reads like a sentence:
`async def read_experiment(job_id: JobId, store: StoreDep) -> Response`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.access import Access, metrics_unauthorized, unauthorized
from api.errors import job_not_found, study_not_found
from api.rendering import PlotIndex, PlotRenderer
from api.services.streams import Followed, Streams, followed_job, followed_study, resume
from core.access.api_keys import ANONYMOUS
from core.experiment.jobs import is_job_id
from core.settings import Settings
from core.store.records import JobRecord, StudyRecord
from core.store.stores import AsyncJobStore, AsyncStudyStore


@dataclass(frozen=True, slots=True)
class Services:
    """What the app opens at startup and every request shares."""

    settings: Settings
    store: AsyncJobStore
    studies: AsyncStudyStore  # on the job store's connections
    renderer: PlotRenderer
    access: Access
    streams: Streams
    plot_index: PlotIndex = field(default_factory=PlotIndex)


# Async, though they only read app state: FastAPI runs a plain `def` dependency in a
# worker thread, which would cost more than the whole Redis round trip of a request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_store(request: Request) -> AsyncJobStore:
    services: Services = request.app.state.services
    return services.store


async def get_study_store(request: Request) -> AsyncStudyStore:
    services: Services = request.app.state.services
    return services.studies


async def get_settings_of_app(request: Request) -> Settings:
    services: Services = request.app.state.services
    return services.settings


ServicesDep = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[AsyncJobStore, Depends(get_store)]
StudyStoreDep = Annotated[AsyncStudyStore, Depends(get_study_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]

JobId = Annotated[
    str,
    Path(description="the experiment's id (a ULID)", examples=["01JD8X3Q7R5M2N4P6T8V0W2Y4Z"]),
]
StudyId = Annotated[
    str,
    Path(description="the study's id (a ULID)", examples=["01JD8X3Q7R5M2N4P6T8V0W2Y4Z"]),
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
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", max_length=64, description="resume after this event id"),
]

# A page of a listing: at most MAX_PAGE items, DEFAULT_PAGE unless asked.
MAX_PAGE = 200
DEFAULT_PAGE = 50
Cursor = Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")]

# ------------------------------------------------------------------------- access

# Both declared as security schemes, so /docs has an Authorize button; neither errors
# by itself: the owner dependencies decide, and in open mode need neither.
_bearer = HTTPBearer(
    auto_error=False, description="an API key as `Authorization: Bearer <key>` (keys mode)"
)
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key, instead of Authorization"
)


async def get_optional_owner(
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> str | None:
    """The owner the request acts for; None without a valid key in keys mode."""
    if services.access.open:
        return ANONYMOUS
    key = bearer.credentials if bearer is not None else api_key
    return services.access.keyring.owner_of(key)


OptionalOwner = Annotated[str | None, Depends(get_optional_owner)]

_metrics_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="metricsToken",
    description="the metrics token as `Authorization: Bearer <token>`, when one is set",
)


def security_in_force(access: Access) -> frozenset[str]:
    """The security schemes a request must satisfy under `access`: the API keys' in keys
    mode, the metrics token's when one is set (the OpenAPI document declares only these)."""
    schemes = set() if access.open else {_bearer.scheme_name, _api_key.scheme_name}
    if access.metrics_token is not None:
        schemes.add(_metrics_bearer.scheme_name)
    return frozenset(schemes)


async def check_metrics_token(
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_metrics_bearer)],
) -> None:
    """Nothing, when /metrics may answer; a 401 problem when the token set was not sent."""
    if not services.access.may_scrape(bearer.credentials if bearer is not None else None):
        raise metrics_unauthorized()


MetricsScraper = Depends(check_metrics_token)


async def get_owner(owner: OptionalOwner) -> str:
    """The owner the request acts for; a 401 problem without a valid key in keys mode."""
    if owner is None:
        raise unauthorized()
    return owner


OwnerDep = Annotated[str, Depends(get_owner)]


async def get_owned_job_id(job_id: JobId, owner: OwnerDep, services: ServicesDep) -> str:
    """The id, when the caller may see that job; a 404 problem (the same for another
    owner's job as for an unknown one) otherwise. Open mode skips the lookup."""
    if not is_job_id(job_id):
        raise job_not_found(job_id)
    if not services.access.open and await services.store.owner_of(job_id) != owner:
        raise job_not_found(job_id)
    return job_id


OwnedJobId = Annotated[str, Depends(get_owned_job_id)]


async def get_existing_job(job_id: JobId, services: ServicesDep, owner: OwnerDep) -> JobRecord:
    """The job's record, when the caller may see it, or a 404 problem: the same, by the
    same path and work, for another owner's job as for an unknown one."""
    if not is_job_id(job_id):
        raise job_not_found(job_id)
    record = await services.store.get_owned(job_id, owner=services.access.reader(owner))
    if record is None:
        raise job_not_found(job_id)
    return record


ExistingJob = Annotated[JobRecord, Depends(get_existing_job)]


async def get_existing_study(
    study_id: StudyId, studies: StudyStoreDep, services: ServicesDep, owner: OwnerDep
) -> StudyRecord:
    """The study, brought up to date with its children, when the caller may see it; else
    a 404 problem: the same, by the same path and work, for another owner's study as for
    an unknown one (neither is reconciled with its children)."""
    if not is_job_id(study_id):
        raise study_not_found(study_id)
    record = await studies.get_study(study_id, owner=services.access.reader(owner))
    if record is None:
        raise study_not_found(study_id)
    return record


ExistingStudy = Annotated[StudyRecord, Depends(get_existing_study)]


def record_stream(
    existing: Callable[..., Awaitable[JobRecord | StudyRecord]],
    follow: Callable[[AsyncJobStore, str], Followed],
) -> Any:
    """The dependency of a route streaming one record's events: the record `existing`
    finds (or its problem), as `follow` follows it from after the client's Last-Event-ID;
    a 204 when it finished and that id was the last of its stream."""

    async def resumed(
        *,
        # A default, not an alias: FastAPI reads annotations in the module's namespace,
        # where the factory's argument is not.
        record: JobRecord | StudyRecord = Depends(existing),  # noqa: B008
        services: ServicesDep,
        last_event_id: LastEventId = None,
    ) -> Followed:
        target = follow(services.store, record.id)
        return await resume(target, last_event_id, finished=record.status.finished)

    return Depends(resumed)


JobStream = Annotated[Followed, record_stream(get_existing_job, followed_job)]
StudyStream = Annotated[Followed, record_stream(get_existing_study, followed_study)]


async def open_stream(services: ServicesDep, owner: OwnerDep) -> AsyncIterator[Streams]:
    """The process's event streams, holding one more of `owner`'s open while the response
    lasts; a 429 (the owner's cap) or 503 (the process's) problem past the caps."""
    with services.streams.gate.admit(owner):
        yield services.streams


OpenStream = Annotated[Streams, Depends(open_stream)]
