"""Comparison studies: a grid of experiments in one request, summarized and drawn side by side.

`POST /v1/studies` validates the grid, creates in one step the study and one
ordinary experiment per configuration and seed (each visible under
/v1/experiments), then sends the children, which workers train in parallel (a
child whose message could not be sent waits in the outbox for a reaper, as any
new experiment does). The study's status and progress are read from its
children; once every child has finished it has a summary (JSON and CSV) and
plots, with the conventions of an experiment's: problem documents, ETag/304,
immutable caching, CORS, resumable Server-Sent Events, cursor pagination.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from api.access import SHARE_DEFAULT_SECONDS, limit_refused, unauthorized
from api.deps import OptionalOwner, OwnerDep, Services, ServicesDep
from api.errors import EndOfStream, Problem
from api.links import public_url
from api.responses import FastJSONResponse, etag_matches, not_modified, png_response
from api.routes.events import LastEventId, is_final
from api.routes.plots import (
    DEFAULT_SIZE,
    SIGNED_HEADERS,
    Dpi,
    Expires,
    ExpiresIn,
    Height,
    IfNoneMatch,
    Signature,
    Width,
    share_link,
    size_of,
)
from api.schemas import (
    PlotList,
    ShareLink,
    StudiesPage,
    StudyPublic,
    StudySummary,
    problem_responses,
)
from core.access.share_links import PlotGrant
from core.experiment.jobs import JobStatus, is_job_id
from core.experiment.studies import StudyError, StudyPlan, expand_study, parse_study
from core.experiment.study_summary import summary_csv
from core.plotting.study_plots import (
    STUDY_PLOT_DESCRIPTIONS,
    STUDY_PLOT_NAMES,
    StudyPlotUnavailableError,
    planned_study_plots,
    render_study_plot,
    study_series,
)
from core.store.admission import Refusal, TooManyActiveJobs
from core.store.keys import plot_field
from core.store.pages import InvalidCursor
from core.store.plots import png_etag
from core.store.records import StudyRecord, dumps_compact
from core.store.stores import AsyncJobStore, AsyncStudyStore

router = APIRouter(prefix="/studies", tags=["studies"])

logger = logging.getLogger(__name__)

MAX_PAGE = 200
# What a study refused at the active-jobs limit suggests waiting, as for an experiment.
ACTIVE_LIMIT_RETRY_AFTER = 10.0
# How long an event stream waits for its next event before reading the children itself.
POLL_MS = 500
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")

StudyId = Annotated[
    str,
    Path(description="the study's id (a ULID)", examples=["01JD8X3Q7R5M2N4P6T8V0W2Y4Z"]),
]
StudyPlotName = Annotated[str, Path(description=f"one of: {', '.join(STUDY_PLOT_NAMES)}")]
StudyBody = Annotated[
    dict[str, Any],
    Body(
        description=(
            "`base` (an experiment spec), `axes` (spec field path -> values) and `seeds`; "
            'or `{"preset": NAME}` (GET /v1/presets lists them)'
        ),
        openapi_examples={
            "tutorial": {"summary": "the tutorial's comparison", "value": {"preset": "tutorial"}},
            "grid": {
                "summary": "activations x initializers, 3 seeds, 50 epochs",
                "value": {
                    "base": {"training": {"epochs": 50}},
                    "axes": {
                        "model.activation": ["sigmoid", "relu"],
                        "model.initializer.kind": ["random_normal", "glorot_uniform"],
                    },
                    "seeds": 3,
                },
            },
        },
    ),
]

# ------------------------------------------------------------------- dependencies

_stores: weakref.WeakKeyDictionary[AsyncJobStore, AsyncStudyStore] = weakref.WeakKeyDictionary()


def study_store_of(services: Services) -> AsyncStudyStore:
    """The study store on the app's job store connections (made once per app)."""
    studies = _stores.get(services.store)
    if studies is None:
        studies = _stores[services.store] = AsyncStudyStore.sharing(services.store)
    return studies


async def get_study_store(services: ServicesDep) -> AsyncStudyStore:
    return study_store_of(services)


StudyStoreDep = Annotated[AsyncStudyStore, Depends(get_study_store)]


def study_not_found(study_id: str) -> Problem:
    return Problem(404, "Study not found", f"no study with id {study_id!r}", kind="not-found")


def study_not_finished(record: StudyRecord, what: str) -> Problem:
    return Problem(
        409,
        "Study not finished",
        f"study {record.id} is {record.status.value}; its {what} exists once every child "
        "has finished",
        kind="not-finished",
        study_status=record.status.value,
    )


async def get_existing_study(
    study_id: StudyId, studies: StudyStoreDep, services: ServicesDep, owner: OwnerDep
) -> StudyRecord:
    """The study, brought up to date with its children, when the caller may see it; else
    a 404 problem (the same for another owner's study as for an unknown one)."""
    record = await studies.get_study(study_id) if is_job_id(study_id) else None
    if record is None or not services.access.may_see(owner, record.owner):
        raise study_not_found(study_id)
    return record


ExistingStudy = Annotated[StudyRecord, Depends(get_existing_study)]


def location(study_id: str) -> str:
    return f"/v1/studies/{study_id}"


# --------------------------------------------------------------------- lifecycle


@router.post(
    "",
    status_code=202,
    response_model=StudyPublic,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
)
async def create_study(
    services: ServicesDep, studies: StudyStoreDep, owner: OwnerDep, body: StudyBody
) -> Response:
    """Queue a study: one experiment per configuration and seed; 202, the study, Location."""
    plan = _plan(body)
    access = services.access
    if not access.open:
        refusal = await studies.admit(
            owner,
            jobs=len(plan.children),
            per_minute=access.submissions_per_minute,
            max_active=access.max_active_jobs,
        )
        if refusal is not None:
            raise limit_refused(refusal, access)
    queues = [services.settings.queue_for(spec.device) for spec in plan.children]
    try:
        record = await studies.create_study(
            plan=plan,
            queues=queues,
            plots=planned_study_plots(plan.children),
            owner=owner,
            # Checked again as the jobs are made: concurrent submissions cannot pass it.
            max_active=0 if access.open else access.max_active_jobs,
            members=services.settings.ensemble_members,
        )
    except TooManyActiveJobs as error:
        refusal = Refusal("max_active_jobs", ACTIVE_LIMIT_RETRY_AFTER, error.active)
        raise limit_refused(refusal, access) from error
    record = await studies.get_study(record.id) or record
    return FastJSONResponse(
        record.to_public(), status_code=202, headers={"Location": location(record.id)}
    )


def _plan(body: Mapping[str, Any]) -> StudyPlan:
    """The validated study, or a 422 problem naming each bad field."""
    try:
        return expand_study(parse_study(body))
    except StudyError as error:
        errors = error.errors
    detail = "; ".join(f"{item['field']}: {item['reason']}" for item in errors)
    raise Problem(422, "Invalid study", detail, kind="invalid-study", errors=errors)


@router.get("", response_model=StudiesPage, responses=problem_responses(401, 422))
async def list_studies(
    studies: StudyStoreDep,
    services: ServicesDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="studies per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> Response:
    """Studies, newest first, one page at a time (with API keys, the key owner's only)."""
    mine = None if services.access.open else owner
    try:
        page = await studies.list_studies(limit=limit, cursor=cursor, owner=mine)
    except InvalidCursor as error:
        reason = "not a cursor this API handed out"
        raise Problem(
            422,
            "Invalid request",
            f"cursor: {reason}",
            kind="invalid-request",
            errors=[{"field": "cursor", "reason": reason}],
        ) from error
    # A stored record's status may be behind its children's: read the unfinished live.
    current = await asyncio.gather(*(_current(studies, record) for record in page.items))
    items = [record.to_public() for record in current if record is not None]
    return FastJSONResponse({"items": items, "next_cursor": page.next_cursor})


async def _current(studies: AsyncStudyStore, record: StudyRecord) -> StudyRecord | None:
    return record if record.status.finished else await studies.get_study(record.id)


@router.get("/{study_id}", response_model=StudyPublic, responses=problem_responses(401, 404))
async def read_study(study: ExistingStudy) -> Response:
    """One study: status, progress, its configurations and children, the summary once done."""
    return FastJSONResponse(study.to_public())


@router.post(
    "/{study_id}/cancel",
    response_model=StudyPublic,
    responses={202: {"model": StudyPublic}, **problem_responses(404, 409)},
)
async def cancel_study(study: ExistingStudy, studies: StudyStoreDep) -> Response:
    """Cancel: queued children at once, running ones after their epoch (202 while any runs)."""
    study_id = study.id
    outcome = await studies.cancel_study(study_id)
    if outcome is None:
        raise study_not_found(study_id)
    if outcome.before in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise Problem(
            409,
            "Study already finished",
            f"study {study_id} already {outcome.before.value}",
            kind="already-finished",
            study_status=outcome.before.value,
        )
    await asyncio.gather(*(studies.request_cancel(child_id) for child_id in outcome.children))
    record = await studies.get_study(study_id)
    if record is None:
        raise study_not_found(study_id)
    status_code = 202 if record.progress["running"] else 200
    return FastJSONResponse(record.to_public(), status_code=status_code)


@router.delete("/{study_id}", status_code=204, responses=problem_responses(401, 404))
async def delete_study(study: ExistingStudy, studies: StudyStoreDep) -> Response:
    """Delete the study and all its experiments; running ones stop after their epoch."""
    children = await studies.delete_study(study.id)
    if children is None:
        raise study_not_found(study.id)
    await asyncio.gather(*(studies.delete(child_id) for child_id in children))
    return Response(status_code=204)


# ----------------------------------------------------------------------- summary


def _summary_document(study: StudyRecord) -> dict[str, Any]:
    if not study.status.finished or study.summary is None:
        raise study_not_finished(study, "summary")
    return {
        "id": study.id,
        "status": study.status.value,
        "axes": list(study.request.get("axes", {})),
        "seeds": study.seeds,
        "rows": study.summary["rows"],
    }


@router.get(
    "/{study_id}/summary", response_model=StudySummary, responses=problem_responses(401, 404, 409)
)
async def read_summary(study: ExistingStudy, services: ServicesDep) -> Response:
    """One row per configuration: axis values, final loss and accuracy over seeds, verdicts."""
    headers = {"Cache-Control": services.access.immutable}
    return FastJSONResponse(_summary_document(study), headers=headers)


@router.get(
    "/{study_id}/summary.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "one line per configuration"},
        **problem_responses(404, 409),
    },
)
async def read_summary_csv(study: ExistingStudy, services: ServicesDep) -> Response:
    """The summary as CSV: a column per axis, mean/std/min/max of loss and accuracy."""
    document = _summary_document(study)
    return Response(
        summary_csv(document, document["axes"]),
        media_type="text/csv; charset=utf-8",
        headers={
            "Cache-Control": services.access.immutable,
            "Content-Disposition": f'attachment; filename="study-{study.id}.csv"',
        },
    )


# ------------------------------------------------------------------------ events


async def study_resume_point(
    study: ExistingStudy, studies: StudyStoreDep, last_event_id: LastEventId = None
) -> tuple[StudyRecord, str]:
    """The study and the stream id to read after; 204 when a finished stream was fully read."""
    after = last_event_id if last_event_id and _STREAM_ID.match(last_event_id) else "0"
    finished_and_read = study.status.finished and after != "0"
    if finished_and_read and not await studies.read_study_events(study.id, after=after, count=1):
        raise EndOfStream()
    return study, after


StudyResumePoint = Annotated[tuple[StudyRecord, str], Depends(study_resume_point)]


@router.get(
    "/{study_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "text/event-stream of `state`, `child`, `cancel_requested`"},
        204: {"description": "the stream already ended before Last-Event-ID"},
        **problem_responses(404),
    },
)
async def stream_study_events(
    start: StudyResumePoint, studies: StudyStoreDep
) -> AsyncIterator[ServerSentEvent]:
    """Each child's state changes and the study's, as Server-Sent Events, until it ends."""
    study, after = start
    while True:
        events = await studies.read_study_events(study.id, after=after, block_ms=POLL_MS)
        for event in events:
            after = event.id
            yield ServerSentEvent(raw_data=event.data, event=event.type, id=event.id)
            if is_final(event.type, event.data):
                return
        if events:
            continue
        # Nothing new: read the children, which adds their changes to the stream.
        record = await studies.get_study(study.id)
        if record is None:  # deleted, or expired
            return
        if record.status.finished and not await studies.read_study_events(
            study.id, after=after, count=1
        ):  # its events are gone: still say how it ended
            yield ServerSentEvent(data={"status": record.status.value}, event="state")
            return


# ------------------------------------------------------------------------- plots


@router.get(
    "/{study_id}/plots", response_model=PlotList, responses=problem_responses(401, 404, 409)
)
async def list_study_plots(
    study: ExistingStudy, request: Request, services: ServicesDep
) -> Response:
    """The plots of a finished study, with their URLs."""
    if not study.status.finished:
        raise study_not_finished(study, "plots")
    items = [
        {
            "name": name,
            "description": STUDY_PLOT_DESCRIPTIONS[name],
            "url": public_url(
                request, services.settings, "read_study_plot", study_id=study.id, name=name
            ),
        }
        for name in study.plots
    ]
    return FastJSONResponse({"items": items})


@router.get(
    "/{study_id}/plots/{name}.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "the PNG"},
        304: {"description": "If-None-Match matched: not modified"},
        **problem_responses(401, 403, 404, 409, 422),
    },
)
async def read_study_plot(
    study_id: StudyId,
    name: StudyPlotName,
    services: ServicesDep,
    studies: StudyStoreDep,
    owner: OptionalOwner,
    width: Width = None,
    height: Height = None,
    dpi: Dpi = None,
    if_none_match: IfNoneMatch = None,
    expires: Expires = None,
    sig: Signature = None,
) -> Response:
    """A study plot as PNG, optionally at another width, height and dpi; ETag and 304.

    With `expires` and `sig` (a share link), no API key is needed; a bad or expired
    signature is a 403.
    """
    access = services.access
    if not is_job_id(study_id):
        raise study_not_found(study_id)
    check_study_plot_name(name)
    size = size_of(width, height, dpi)
    if expires is not None or sig is not None:
        grant = PlotGrant("study", study_id, name, size, expires or 0)
        cache_control = access.check_share(grant, sig)
    else:
        if owner is None:
            raise unauthorized()
        if not access.open and await studies.study_owner(study_id) != owner:
            raise study_not_found(study_id)
        cache_control = access.immutable
    response = await _study_plot(
        services, studies, study_id, name, size, if_none_match, cache_control
    )
    if expires is not None or sig is not None:
        response.headers.update(SIGNED_HEADERS)
    return response


def check_study_plot_name(name: str) -> None:
    if name not in STUDY_PLOT_NAMES:
        choices = ", ".join(STUDY_PLOT_NAMES)
        raise Problem(404, "Plot not found", f"no study plot {name!r}; choose one of {choices}")


async def _study_plot(
    services: Services,
    studies: AsyncStudyStore,
    study_id: str,
    name: str,
    size: tuple[int, int, int],
    if_none_match: str | None,
    cache_control: str,
) -> Response:
    field = plot_field(name, None if size == DEFAULT_SIZE else size)
    if if_none_match is not None:
        cached = await studies.get_study_plot(study_id, field=field, body=False)
        if cached.etag is not None and etag_matches(if_none_match, cached.etag):
            return not_modified(cached.etag, cache_control)
    plot = await studies.get_study_plot(study_id, field=field)
    if plot.png is not None and plot.etag is not None:
        return png_response(plot.png, plot.etag, cache_control)
    study = await studies.get_study(study_id)  # brings a stale status up to date
    if study is None:
        raise study_not_found(study_id)
    if not study.status.finished:
        raise study_not_finished(study, "plots")
    png = await _render(services, studies, study, name, size, field)
    etag = await studies.put_study_plot(study_id, field=field, png=png)
    # Not cached (the cache is full): the bytes still have a stable tag.
    return png_response(png, etag or png_etag(png), cache_control)


@router.post(
    "/{study_id}/plots/{name}/share",
    response_model=ShareLink,
    responses=problem_responses(401, 404, 422),
)
async def share_study_plot(
    study: ExistingStudy,
    name: StudyPlotName,
    request: Request,
    services: ServicesDep,
    width: Width = None,
    height: Height = None,
    dpi: Dpi = None,
    expires_in: ExpiresIn = SHARE_DEFAULT_SECONDS,
) -> Response:
    """A signed link to the study plot at this size, for an `<img>` anywhere: no key, until
    it expires."""
    check_study_plot_name(name)
    grant = PlotGrant("study", study.id, name, size_of(width, height, dpi), 0)
    url = public_url(request, services.settings, "read_study_plot", study_id=study.id, name=name)
    link = share_link(services, grant, url, expires_in, width=width, height=height, dpi=dpi)
    return FastJSONResponse(link)


async def _render(
    services: Services,
    studies: AsyncStudyStore,
    study: StudyRecord,
    name: str,
    size: tuple[int, int, int],
    field: str,
) -> bytes:
    series = await _series(studies, study)
    width, height, dpi = size

    def draw() -> bytes:
        return render_study_plot(name, series, width=width, height=height, dpi=dpi)

    try:
        return await services.renderer.render(f"study/{study.id}/{field}", draw)
    except StudyPlotUnavailableError as error:
        raise Problem(404, "Plot not available", str(error), kind="plot-unavailable") from error


async def _series(studies: AsyncStudyStore, study: StudyRecord) -> dict[str, Any]:
    """The study's plot series: stored, or built from its children's results and stored."""
    stored = await studies.get_study_series(study.id)
    if stored is not None:
        return dict(orjson.loads(stored))
    succeeded = [child.status == JobStatus.SUCCEEDED.value for child in study.children]
    blobs = await asyncio.gather(
        *(
            studies.get_result(child.id)
            for child, ok in zip(study.children, succeeded, strict=True)
            if ok
        )
    )
    contents = iter(blob.content for blob in blobs)

    def results() -> Iterator[Mapping[str, Any] | None]:
        for ok in succeeded:
            content = next(contents) if ok else None
            yield orjson.loads(content) if content else None

    def build() -> dict[str, Any]:
        return study_series(study.configs, study.seeds, results())

    series = await anyio.to_thread.run_sync(build)
    await studies.put_study_series(study.id, series_json=dumps_compact(series))
    return series
