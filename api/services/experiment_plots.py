"""An experiment's plot behind its routes: the stored PNG, or one drawn from the result.

The default size was rendered by the worker when the job ended; other sizes, and
any plot the worker failed to draw that the result has the numbers for, are
drawn here on first request, off the event loop (api.rendering), and cached in
Redis.
"""

from __future__ import annotations

import anyio.to_thread
import orjson
from starlette.responses import Response

from api.deps import Services
from api.errors import Problem, job_not_found, job_not_succeeded
from api.rendering import render_etag
from api.responses import etag_matches, not_modified, png_response
from api.services.plots import DEFAULT_SIZE, PlotReply, charge_render
from core.experiment.jobs import JobStatus
from core.plotting.catalog import EXPERIMENT_PLOTS
from core.plotting.kinds import PlotUnavailableError
from core.store.keys import plot_field


async def available_plot_names(services: Services, job_id: str) -> tuple[str, ...] | None:
    """The plots a succeeded job's result has the numbers for; None without a result."""
    names = services.plot_index.get(job_id)
    if names is not None:
        return names
    stored = await services.store.get_result(job_id)
    if stored.content is None:  # expired or deleted meanwhile
        return None
    content = stored.content

    def read() -> tuple[str, ...]:
        return tuple(EXPERIMENT_PLOTS.available(orjson.loads(content)))

    names = await anyio.to_thread.run_sync(read)  # a result can be megabytes of JSON
    services.plot_index.remember(job_id, names)
    return names


async def experiment_plot(
    services: Services,
    job_id: str,
    name: str,
    reply: PlotReply,
) -> Response:
    """The plot's PNG: stored, or drawn from the result (counted against the
    payer's renders a minute) and stored."""
    # The default size is the one the worker rendered when the job ended.
    field = plot_field(name, None if reply.size == DEFAULT_SIZE else reply.size)
    store = services.store
    # With If-None-Match, only the stored ETag first: a match needs no PNG.
    plot = await store.get_plot(job_id, field=field, body=reply.if_none_match is None)
    if plot.etag is not None and plot.png is None:
        if reply.if_none_match is not None and etag_matches(reply.if_none_match, plot.etag):
            return not_modified(plot.etag, reply.cache_control)
        plot = await store.get_plot(job_id, field=field)
    if plot.png is not None and plot.etag is not None:
        return png_response(plot.png, plot.etag, reply.cache_control)
    # Not stored: the miss brought the job's status and the plots the worker drew.
    if plot.status is None:
        raise job_not_found(job_id)
    if plot.status is not JobStatus.SUCCEEDED:
        raise job_not_succeeded(job_id, plot.status.value, "plots")
    if name not in plot.names:  # the worker may have failed to draw it: can the API?
        available = await available_plot_names(services, job_id)
        if available is None:
            raise job_not_found(job_id)
        if name not in available:
            raise plot_unavailable(job_id, name)
    key = f"{job_id}/{field}"
    etag = render_etag(key)
    if reply.if_none_match is not None and etag_matches(reply.if_none_match, etag):
        # Drawn before, and not kept: the same bytes.
        return not_modified(etag, reply.cache_control)
    await charge_render(services, reply.payer)
    png = await _render(services, job_id, name, reply.size, key)
    # Cached under the hash of its bytes while the job's cache has room; else not kept,
    # and named by the render ETag, which the next If-None-Match is checked against.
    stored_etag = await store.put_plot(job_id, field=field, png=png)
    return png_response(png, stored_etag or etag, reply.cache_control)


def plot_unavailable(job_id: str, name: str) -> Problem:
    """404 for a known plot this experiment's result has no numbers for, saying why."""
    reason = PlotUnavailableError(EXPERIMENT_PLOTS[name], EXPERIMENT_PLOTS.subject)
    detail = f"experiment {job_id}: {reason}"
    return Problem(404, "Plot not available", detail, kind="plot-unavailable")


async def _render(
    services: Services, job_id: str, name: str, size: tuple[int, int, int], key: str
) -> bytes:
    stored = await services.store.get_result(job_id)
    if stored.content is None:  # expired or deleted meanwhile
        raise job_not_found(job_id)
    content = stored.content
    width, height, dpi = size

    def draw() -> bytes:
        result = orjson.loads(content)
        return EXPERIMENT_PLOTS.render(name, result, width=width, height=height, dpi=dpi)

    try:
        return await services.renderer.render(key, draw)
    except PlotUnavailableError as error:
        raise Problem(404, "Plot not available", str(error), kind="plot-unavailable") from error
