"""A study's work behind its routes: its state read live from its children, cancel and
delete with them, its summary, and its plots drawn from its children's results."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import anyio.to_thread
import orjson
from starlette.responses import Response

from api.deps import Services
from api.errors import Problem, already_finished, study_not_found
from api.responses import FastJSONResponse, etag_matches, not_modified, png_response
from api.services.plots import DEFAULT_SIZE, PlotReply, charge_render
from core.experiment.jobs import JobStatus
from core.plotting.catalog import STUDY_PLOTS
from core.plotting.kinds import PlotUnavailableError
from core.plotting.study.series import study_series
from core.store.keys import plot_field
from core.store.plots import png_etag
from core.store.records import StudyRecord, dumps_compact
from core.store.stores import AsyncStudyStore


def study_location(study_id: str) -> str:
    return f"/v1/studies/{study_id}"


def study_accepted(record: StudyRecord) -> Response:
    """202 with a queued study and its Location."""
    headers = {"Location": study_location(record.id)}
    return FastJSONResponse(record.to_public(), status_code=202, headers=headers)


def study_not_finished(record: StudyRecord, what: str) -> Problem:
    return Problem(
        409,
        "Study not finished",
        f"study {record.id} is {record.status.value}; its {what} exists once every child "
        "has finished",
        kind="not-finished",
        study_status=record.status.value,
    )


async def current(studies: AsyncStudyStore, records: Sequence[StudyRecord]) -> list[StudyRecord]:
    """`records` brought up to date: a stored record's status may be behind its children's,
    so the unfinished are read live (those gone meanwhile are left out)."""

    async def one(record: StudyRecord) -> StudyRecord | None:
        return record if record.status.finished else await studies.get_study(record.id)

    found = await asyncio.gather(*(one(record) for record in records))
    return [record for record in found if record is not None]


async def cancel(studies: AsyncStudyStore, study_id: str) -> StudyRecord:
    """Cancel the study and its unfinished children; the study as it is now.

    A 404 problem when it is gone; a 409 when it had already finished.
    """
    outcome = await studies.cancel_study(study_id)
    if outcome is None:
        raise study_not_found(study_id)
    if outcome.before in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise already_finished("study", study_id, outcome.before.value, status_field="study_status")
    await asyncio.gather(*(studies.request_cancel(child_id) for child_id in outcome.children))
    record = await studies.get_study(study_id)
    if record is None:
        raise study_not_found(study_id)
    return record


async def delete(studies: AsyncStudyStore, study_id: str) -> None:
    """Delete the study and all its experiments; a 404 problem when it is gone."""
    children = await studies.delete_study(study_id)
    if children is None:
        raise study_not_found(study_id)
    await asyncio.gather(*(studies.delete(child_id) for child_id in children))


def summary_document(study: StudyRecord) -> dict[str, Any]:
    """The StudySummary of a finished study; a 409 problem before."""
    if not study.status.finished or study.summary is None:
        raise study_not_finished(study, "summary")
    return {
        "id": study.id,
        "status": study.status.value,
        "axes": list(study.request.get("axes", {})),
        "seeds": study.seeds,
        "rows": study.summary["rows"],
        "remedies": study.summary.get("remedies"),
    }


async def study_plot(
    services: Services,
    study_id: str,
    name: str,
    reply: PlotReply,
) -> Response:
    """The study plot's PNG: stored, or drawn from its children's results (counted
    against the payer's renders a minute) and stored."""
    studies = services.studies
    field = plot_field(name, None if reply.size == DEFAULT_SIZE else reply.size)
    if reply.if_none_match is not None:
        cached = await studies.get_study_plot(study_id, field=field, body=False)
        if cached.etag is not None and etag_matches(reply.if_none_match, cached.etag):
            return not_modified(cached.etag, reply.cache_control)
    plot = await studies.get_study_plot(study_id, field=field)
    if plot.png is not None and plot.etag is not None:
        return png_response(plot.png, plot.etag, reply.cache_control)
    study = await studies.get_study(study_id)  # brings a stale status up to date
    if study is None:
        raise study_not_found(study_id)
    if not study.status.finished:
        raise study_not_finished(study, "plots")
    await charge_render(services, reply.payer)
    png = await _render(services, study, name, reply.size, field)
    etag = await studies.put_study_plot(study_id, field=field, png=png)
    # Not cached (the cache is full): the bytes still have a stable tag.
    return png_response(png, etag or png_etag(png), reply.cache_control)


async def _render(
    services: Services, study: StudyRecord, name: str, size: tuple[int, int, int], field: str
) -> bytes:
    series = await _series(services.studies, study)
    width, height, dpi = size

    def draw() -> bytes:
        return STUDY_PLOTS.render(name, series, width=width, height=height, dpi=dpi)

    try:
        return await services.renderer.render(f"study/{study.id}/{field}", draw)
    except PlotUnavailableError as error:
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
        return study_series(
            study.configs, study.seeds, results(), remedies=study.request.get("remedies")
        )

    series = await anyio.to_thread.run_sync(build)
    await studies.put_study_series(study.id, series_json=dumps_compact(series))
    return series
