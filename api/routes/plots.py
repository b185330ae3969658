"""Plots of a finished experiment: a list of links, and PNGs to embed with a plain <img>.

A PNG never changes for its URL (a job id, a plot, a size), so it carries a
strong ETag and a year-long immutable Cache-Control, and any origin may load
it. The default size was rendered by the worker when the job ended; other
sizes, and any plot the worker failed to draw that the result has the numbers
for, are rendered on first request, off the event loop (api.rendering), and
cached in Redis. Past the job's cache (core.store.jobs.MAX_CACHED_PLOTS) a render is
not kept, but its ETag is known without rendering, so If-None-Match still gives 304.

With API keys, a PNG needs its owner's key, or a share link: `POST .../share`
signs one (api.access) that any page can embed until it expires.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from api.deps import ExistingJob, JobId, OptionalOwner, ServicesDep
from api.errors import job_not_found, job_not_succeeded
from api.schemas import PNG_RESPONSES, PlotList, ShareLink, problem_responses
from api.services import plots as plot_service
from api.services.experiment_plots import available_plot_names, experiment_plot
from core.experiment.jobs import JobStatus
from core.plotting.catalog import EXPERIMENT_PLOTS

router = APIRouter(prefix="/experiments", tags=["plots"])

EXPERIMENT_PNGS = plot_service.PlotFamily(
    "experiment",
    EXPERIMENT_PLOTS,
    experiment_plot,
    lambda services: services.store.owner_of,
    job_not_found,
)
PlotName = Annotated[str, Path(description=f"one of: {', '.join(EXPERIMENT_PLOTS.names)}")]


@router.get("/{job_id}/plots", response_model=PlotList, responses=problem_responses(401, 404, 409))
async def list_plots(job: ExistingJob, request: Request, services: ServicesDep) -> Response:
    """The plots of a succeeded experiment, with their URLs."""
    if job.status is not JobStatus.SUCCEEDED:
        raise job_not_succeeded(job.id, job.status.value, "plots")
    names = set(job.plots)
    # A plot the worker did not draw may still be drawn.
    if not names.issuperset(EXPERIMENT_PLOTS.names):
        names.update(await available_plot_names(services, job.id) or ())
    listed = [name for name in EXPERIMENT_PLOTS.names if name in names]
    return plot_service.plot_list(
        request, services, EXPERIMENT_PLOTS, listed, "read_plot", job_id=job.id
    )


@router.get(
    "/{job_id}/plots/{name}.png",
    response_class=Response,
    responses=PNG_RESPONSES,
)
async def read_plot(
    job_id: JobId,
    name: PlotName,
    services: ServicesDep,
    owner: OptionalOwner,
    ask: plot_service.PlotRead,
) -> Response:
    """A plot as PNG, optionally at another width, height and dpi; ETag and 304 supported.

    With `expires` and `sig` (a share link), no API key is needed; a bad or expired
    signature is a 403.
    """
    # A stored default-size PNG is usually answered before this route, by api.hot_reads.
    return await plot_service.serve_plot(services, EXPERIMENT_PNGS, job_id, name, ask, owner=owner)


@router.post(
    "/{job_id}/plots/{name}/share",
    response_model=ShareLink,
    responses=problem_responses(401, 404, 422),
)
async def share_plot(
    job: ExistingJob,
    name: PlotName,
    request: Request,
    services: ServicesDep,
    ask: plot_service.PlotShare,
) -> Response:
    """A signed link to the plot at this size, for an `<img>` anywhere: no key, until it expires."""
    return plot_service.share_link(
        request, services, EXPERIMENT_PNGS, job.id, name, ask, "read_plot", job_id=job.id
    )
