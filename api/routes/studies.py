"""Comparison studies: a grid of experiments in one request, summarized and drawn side by side.

`POST /v1/studies` validates the grid and creates in one step the study and one
ordinary experiment per configuration and seed (each visible under
/v1/experiments), which workers train in parallel (api.services.submission).
The study's status and progress are read from its children; once every child
has finished it has a summary (JSON and CSV) and plots, with the conventions of
an experiment's: problem documents, ETag/304, immutable caching, CORS, resumable
Server-Sent Events, cursor pagination.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from api.deps import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Cursor,
    ExistingStudy,
    OpenStream,
    OptionalOwner,
    OwnerDep,
    ServicesDep,
    StudyId,
    StudyStoreDep,
    StudyStream,
)
from api.errors import read_page, study_not_found
from api.openapi import typed_body
from api.responses import FastJSONResponse
from api.schemas import (
    PNG_RESPONSES,
    PlotList,
    RemedyBody,
    ShareLink,
    StudiesPage,
    StudyCreate,
    StudyPublic,
    StudySummary,
    accepted,
    problem_responses,
    stream_responses,
)
from api.services import plots as plot_service
from api.services import studies as study_work
from api.services.remedies import prove_study_config
from api.services.submission import submit_study
from core.experiment.study_summary import summary_csv
from core.plotting.catalog import STUDY_PLOTS

router = APIRouter(prefix="/studies", tags=["studies"])

STUDY_PNGS = plot_service.PlotFamily(
    "study",
    STUDY_PLOTS,
    study_work.study_plot,
    lambda services: services.studies.study_owner,
    study_not_found,
    what="study plot",
)
StudyPlotName = Annotated[str, Path(description=f"one of: {', '.join(STUDY_PLOTS.names)}")]
# Read as a dict: core.experiment.studies names a bad field its own way (axes by path).
StudyBody = Annotated[
    dict[str, Any],
    typed_body(StudyCreate),
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


# --------------------------------------------------------------------- lifecycle


@router.post("", **accepted(StudyPublic, 400, 401, 413, 415, 422, 429, 503))
async def create_study(services: ServicesDep, owner: OwnerDep, body: StudyBody) -> Response:
    """Queue a study: one experiment per configuration and seed; 202, the study, Location."""
    return study_work.study_accepted(await submit_study(services, body, owner))


@router.post(
    "/{study_id}/configs/{index}/remedies",
    **accepted(StudyPublic, 400, 401, 404, 409, 422, 429),
)
async def prove_config_remedies(
    study: ExistingStudy,
    index: Annotated[int, Path(ge=0, le=10_000, description="the configuration's index")],
    services: ServicesDep,
    owner: OwnerDep,
    body: RemedyBody,
) -> Response:
    """Prove a configuration's prescriptions (as its first seed that succeeded got them):
    a study of its spec and each fix; 202, the study, Location. 409 until it finished."""
    return study_work.study_accepted(await prove_study_config(services, study, index, body, owner))


@router.get("", response_model=StudiesPage, responses=problem_responses(401, 422))
async def list_studies(
    studies: StudyStoreDep,
    services: ServicesDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="studies per page")] = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """Studies, newest first, one page at a time (with API keys, the key owner's only)."""
    mine = None if services.access.open else owner
    page = await read_page(studies.list_studies(limit=limit, cursor=cursor, owner=mine))
    items = [record.to_public() for record in await study_work.current(studies, page.items)]
    return FastJSONResponse({"items": items, "next_cursor": page.next_cursor})


@router.get("/{study_id}", response_model=StudyPublic, responses=problem_responses(401, 404))
async def read_study(study: ExistingStudy) -> Response:
    """One study: status, progress, its configurations and children, the summary once done."""
    return FastJSONResponse(study.to_public())


@router.post(
    "/{study_id}/cancel",
    response_model=StudyPublic,
    responses={202: {"model": StudyPublic}, **problem_responses(401, 404, 409)},
)
async def cancel_study(study: ExistingStudy, studies: StudyStoreDep) -> Response:
    """Cancel: queued children at once, running ones within about a second (202 while any runs)."""
    record = await study_work.cancel(studies, study.id)
    status_code = 202 if record.progress["running"] else 200
    return FastJSONResponse(record.to_public(), status_code=status_code)


@router.delete("/{study_id}", status_code=204, responses=problem_responses(401, 404))
async def delete_study(study: ExistingStudy, studies: StudyStoreDep) -> Response:
    """Delete the study and all its experiments; running ones stop within about a second."""
    await study_work.delete(studies, study.id)
    return Response(status_code=204)


# ----------------------------------------------------------------------- summary


@router.get(
    "/{study_id}/summary", response_model=StudySummary, responses=problem_responses(401, 404, 409)
)
async def read_summary(study: ExistingStudy, services: ServicesDep) -> Response:
    """One row per configuration: axis values, final loss and accuracy over seeds, verdicts."""
    headers = {"Cache-Control": services.access.immutable}
    return FastJSONResponse(study_work.summary_document(study), headers=headers)


@router.get(
    "/{study_id}/summary.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "one line per configuration"},
        **problem_responses(401, 404, 409),
    },
)
async def read_summary_csv(study: ExistingStudy, services: ServicesDep) -> Response:
    """The summary as CSV: a column per axis, mean/std/min/max of loss and accuracy."""
    document = study_work.summary_document(study)
    return Response(
        summary_csv(document, document["axes"]),
        media_type="text/csv; charset=utf-8",
        headers={
            "Cache-Control": services.access.immutable,
            "Content-Disposition": f'attachment; filename="study-{study.id}.csv"',
        },
    )


# ------------------------------------------------------------------------ events


@router.get(
    "/{study_id}/events",
    response_class=EventSourceResponse,
    responses=stream_responses("`state`, `child`, `cancel_requested`", 401, 404, 429),
)
async def stream_study_events(
    study: StudyStream, streams: OpenStream
) -> AsyncIterator[ServerSentEvent]:
    """Each child's state changes and the study's, as Server-Sent Events, until it ends."""
    async for event in streams.events([study], labelled=False):
        yield event


# ------------------------------------------------------------------------- plots


@router.get(
    "/{study_id}/plots", response_model=PlotList, responses=problem_responses(401, 404, 409)
)
async def list_study_plots(
    study: ExistingStudy, request: Request, services: ServicesDep
) -> Response:
    """The plots of a finished study, with their URLs."""
    if not study.status.finished:
        raise study_work.study_not_finished(study, "plots")
    return plot_service.plot_list(
        request, services, STUDY_PLOTS, study.plots, "read_study_plot", study_id=study.id
    )


@router.get(
    "/{study_id}/plots/{name}.png",
    response_class=Response,
    responses=PNG_RESPONSES,
)
async def read_study_plot(
    study_id: StudyId,
    name: StudyPlotName,
    services: ServicesDep,
    owner: OptionalOwner,
    ask: plot_service.PlotRead,
) -> Response:
    """A study plot as PNG, optionally at another width, height and dpi; ETag and 304.

    With `expires` and `sig` (a share link), no API key is needed; a bad or expired
    signature is a 403.
    """
    return await plot_service.serve_plot(services, STUDY_PNGS, study_id, name, ask, owner=owner)


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
    ask: plot_service.PlotShare,
) -> Response:
    """A signed link to the study plot at this size, for an `<img>` anywhere: no key, until
    it expires."""
    return plot_service.share_link(
        request, services, STUDY_PNGS, study.id, name, ask, "read_study_plot", study_id=study.id
    )
