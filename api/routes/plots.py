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

import dataclasses
import time
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response

from api.access import SHARE_DEFAULT_SECONDS, SHARE_MAX_SECONDS, SHARE_MIN_SECONDS, unauthorized
from api.deps import ExistingJob, JobId, OptionalOwner, OwnedJobId, Services, ServicesDep
from api.errors import Problem, job_not_found, job_not_succeeded
from api.links import public_url
from api.rendering import render_etag
from api.responses import (
    FastJSONResponse,
    etag_matches,
    not_modified,
    png_response,
)
from api.schemas import PlotList, ShareLink, problem_responses
from core.access.share_links import PlotGrant
from core.experiment.jobs import JobStatus, is_job_id
from core.plotting.experiment_plots import (
    PLOT_DESCRIPTIONS,
    PLOT_NAMES,
    PlotSize,
    PlotUnavailableError,
    available_plots,
    render_plot,
)
from core.store.keys import plot_field
from core.store.records import iso_time

router = APIRouter(prefix="/experiments", tags=["plots"])

PlotName = Annotated[str, Path(description=f"one of: {', '.join(PLOT_NAMES)}")]
Width = Annotated[
    int | None,
    Query(ge=PlotSize.MIN_WIDTH, le=PlotSize.MAX_WIDTH, description=f"pixels, {PlotSize.WIDTH}"),
]
Height = Annotated[
    int | None,
    Query(ge=PlotSize.MIN_HEIGHT, le=PlotSize.MAX_HEIGHT, description=f"pixels, {PlotSize.HEIGHT}"),
]
Dpi = Annotated[
    int | None,
    Query(ge=PlotSize.MIN_DPI, le=PlotSize.MAX_DPI, description=f"dots per inch, {PlotSize.DPI}"),
]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=1024)]
Expires = Annotated[
    int | None, Query(ge=0, le=2**40, description="a share link's expiry (Unix seconds)")
]
Signature = Annotated[str | None, Query(max_length=64, description="a share link's signature")]
ExpiresIn = Annotated[
    int,
    Query(
        ge=SHARE_MIN_SECONDS,
        le=SHARE_MAX_SECONDS,
        description="seconds the link works (at most 90 days)",
    ),
]

DEFAULT_SIZE = (PlotSize.WIDTH, PlotSize.HEIGHT, PlotSize.DPI)
# Added to a PNG answered for a share link: it works from any page, script or <img>.
SIGNED_HEADERS = {"Access-Control-Allow-Origin": "*"}


@router.get("/{job_id}/plots", response_model=PlotList, responses=problem_responses(401, 404, 409))
async def list_plots(job: ExistingJob, request: Request, services: ServicesDep) -> Response:
    """The plots of a succeeded experiment, with their URLs."""
    if job.status is not JobStatus.SUCCEEDED:
        raise job_not_succeeded(job.id, job.status.value, "plots")
    names = set(job.plots)
    if not names.issuperset(PLOT_NAMES):  # a plot the worker did not draw may still be drawn
        names.update(await _available(services, job.id) or ())
    items = [
        {
            "name": name,
            "description": PLOT_DESCRIPTIONS.get(name, ""),
            "url": public_url(request, services.settings, "read_plot", job_id=job.id, name=name),
        }
        for name in PLOT_NAMES
        if name in names
    ]
    return FastJSONResponse({"items": items})


async def _available(services: Services, job_id: str) -> tuple[str, ...] | None:
    """The plots a succeeded job's result has the numbers for; None without a result."""
    names = services.plot_index.get(job_id)
    if names is not None:
        return names
    stored = await services.store.get_result(job_id)
    if stored.content is None:  # expired or deleted meanwhile
        return None
    content = stored.content

    def read() -> tuple[str, ...]:
        return tuple(available_plots(orjson.loads(content)))

    names = await anyio.to_thread.run_sync(read)  # a result can be megabytes of JSON
    services.plot_index.remember(job_id, names)
    return names


@router.get(
    "/{job_id}/plots/{name}.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "the PNG"},
        304: {"description": "If-None-Match matched: not modified"},
        **problem_responses(401, 403, 404, 409, 422),
    },
)
async def read_plot(
    job_id: JobId,
    name: PlotName,
    services: ServicesDep,
    owner: OptionalOwner,
    width: Width = None,
    height: Height = None,
    dpi: Dpi = None,
    if_none_match: IfNoneMatch = None,
    expires: Expires = None,
    sig: Signature = None,
) -> Response:
    """A plot as PNG, optionally at another width, height and dpi; ETag and 304 supported.

    With `expires` and `sig` (a share link), no API key is needed; a bad or expired
    signature is a 403.
    """
    # A stored default-size PNG is usually answered before this route, by api.hot_reads.
    if not is_job_id(job_id):
        raise job_not_found(job_id)
    check_plot_name(name)
    size = (width or PlotSize.WIDTH, height or PlotSize.HEIGHT, dpi or PlotSize.DPI)
    if expires is not None or sig is not None:
        grant = PlotGrant("experiment", job_id, name, size, expires or 0)
        cache_control = services.access.check_share(grant, sig)
        headers = SIGNED_HEADERS
    else:
        cache_control = await _check_owner(services, owner, job_id)
        headers = {}
    response = await _plot(services, job_id, name, size, if_none_match, cache_control)
    response.headers.update(headers)
    return response


def check_plot_name(name: str) -> None:
    if name not in PLOT_NAMES:
        detail = f"no plot {name!r}; choose one of {', '.join(PLOT_NAMES)}"
        raise Problem(404, "Plot not found", detail, kind="plot-not-found")


async def _check_owner(services: Services, owner: str | None, job_id: str) -> str:
    """The Cache-Control for a plot the caller may see; a 401 or 404 problem otherwise."""
    access = services.access
    if owner is None:
        raise unauthorized()
    if not access.open and await services.store.owner_of(job_id) != owner:
        raise job_not_found(job_id)
    return access.immutable


async def _plot(
    services: Services,
    job_id: str,
    name: str,
    size: tuple[int, int, int],
    if_none_match: str | None,
    cache_control: str,
) -> Response:
    # The default size is the one the worker rendered when the job ended.
    field = plot_field(name, None if size == DEFAULT_SIZE else size)
    store = services.store
    # With If-None-Match, only the stored ETag first: a match needs no PNG.
    plot = await store.get_plot(job_id, field=field, body=if_none_match is None)
    if plot.etag is not None and plot.png is None:
        if if_none_match is not None and etag_matches(if_none_match, plot.etag):
            return not_modified(plot.etag, cache_control)
        plot = await store.get_plot(job_id, field=field)
    if plot.png is not None and plot.etag is not None:
        return png_response(plot.png, plot.etag, cache_control)
    # Not stored: the miss brought the job's status and the plots the worker drew.
    if plot.status is None:
        raise job_not_found(job_id)
    if plot.status is not JobStatus.SUCCEEDED:
        raise job_not_succeeded(job_id, plot.status.value, "plots")
    if name not in plot.names:  # the worker may have failed to draw it: can the API?
        available = await _available(services, job_id)
        if available is None:
            raise job_not_found(job_id)
        if name not in available:
            raise plot_unavailable(job_id, name)
    key = f"{job_id}/{field}"
    etag = render_etag(key)
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return not_modified(etag, cache_control)  # drawn before, and not kept: the same bytes
    png = await _render(services, job_id, name, size, key)
    # Cached under the hash of its bytes while the job's cache has room; else not kept,
    # and named by the render ETag, which the next If-None-Match is checked against.
    stored_etag = await store.put_plot(job_id, field=field, png=png)
    return png_response(png, stored_etag or etag, cache_control)


def plot_unavailable(job_id: str, name: str) -> Problem:
    detail = f"plot {name!r} is not available for experiment {job_id}"
    return Problem(404, "Plot not available", detail, kind="plot-unavailable")


@router.post(
    "/{job_id}/plots/{name}/share",
    response_model=ShareLink,
    responses=problem_responses(401, 404, 422),
)
async def share_plot(
    job_id: OwnedJobId,
    name: PlotName,
    request: Request,
    services: ServicesDep,
    width: Width = None,
    height: Height = None,
    dpi: Dpi = None,
    expires_in: ExpiresIn = SHARE_DEFAULT_SECONDS,
) -> Response:
    """A signed link to the plot at this size, for an `<img>` anywhere: no key, until it expires."""
    check_plot_name(name)
    grant = PlotGrant("experiment", job_id, name, size_of(width, height, dpi), 0)
    url = public_url(request, services.settings, "read_plot", job_id=job_id, name=name)
    link = share_link(services, grant, url, expires_in, width=width, height=height, dpi=dpi)
    return FastJSONResponse(link)


def size_of(width: int | None, height: int | None, dpi: int | None) -> tuple[int, int, int]:
    """The size a plot is drawn at: the defaults where none was asked."""
    return (width or PlotSize.WIDTH, height or PlotSize.HEIGHT, dpi or PlotSize.DPI)


def share_link(
    services: Services, grant: PlotGrant, url: str, expires_in: int, **asked: int | None
) -> dict[str, Any]:
    """A ShareLink document: `url` signed for `grant` from now for `expires_in` seconds.

    `asked` are the size parameters the client gave, repeated in the link's query.
    """
    expires = int(time.time()) + expires_in
    grant = dataclasses.replace(grant, expires=expires)
    sizes = {key: value for key, value in asked.items() if value is not None}
    query = services.access.share_query(grant, sizes)
    return {"url": f"{url}?{query}", "expires": expires, "expires_at": iso_time(expires)}


async def _render(
    services: Services, job_id: str, name: str, size: tuple[int, int, int], key: str
) -> bytes:
    stored = await services.store.get_result(job_id)
    if stored.content is None:  # expired or deleted meanwhile
        raise job_not_found(job_id)
    content = stored.content
    width, height, dpi = size

    def draw() -> bytes:
        return render_plot(name, orjson.loads(content), width=width, height=height, dpi=dpi)

    try:
        return await services.renderer.render(key, draw)
    except PlotUnavailableError as error:
        raise Problem(404, "Plot not available", str(error), kind="plot-unavailable") from error
