"""Experiments: submit, list, read, fetch results, cancel, delete."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from api.deps import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Cursor,
    ExistingJob,
    IdempotencyKey,
    JobId,
    OwnedJobId,
    OwnerDep,
    ServicesDep,
    StoreDep,
)
from api.errors import Problem, already_finished, job_not_found, job_not_succeeded, read_page
from api.responses import FastJSONResponse, record_response, stored_file_response
from api.result_schema import ExperimentResult
from api.schemas import (
    NOT_MODIFIED,
    JobPublic,
    JobsPage,
    RemedyBody,
    StudyPublic,
    accepted,
    problem_responses,
)
from api.services.plots import IfNoneMatch
from api.services.remedies import prove_experiment
from api.services.studies import study_accepted
from api.services.submission import submit_experiment
from core.experiment.jobs import JobStatus, is_job_id
from core.experiment.spec import ExperimentSpec

router = APIRouter(prefix="/experiments", tags=["experiments"])

logger = logging.getLogger(__name__)

SpecBody = Annotated[
    ExperimentSpec,
    Body(
        default_factory=ExperimentSpec,
        description="the experiment; `{}` (or no body) is the tutorial's sigmoid network",
        openapi_examples={
            "tutorial": {"summary": "the tutorial, 100 epochs", "value": {}},
            "quick": {"summary": "a quick run", "value": {"training": {"epochs": 5}}},
            "tanh": {"summary": "tanh hidden layers", "value": {"model": {"activation": "tanh"}}},
        },
    ),
]


def location(job_id: str) -> str:
    return f"/v1/experiments/{job_id}"


@router.post("", **accepted(JobPublic, 400, 401, 413, 422, 429, 503))
async def create_experiment(
    services: ServicesDep, spec: SpecBody, owner: OwnerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    """Queue an experiment: 202, its record and Location; Idempotency-Key makes it repeatable."""
    created = await submit_experiment(services, spec, owner, idempotency_key)
    record = created.record
    headers = {"Location": location(record.id)}
    if not created.new:
        headers["Idempotent-Replayed"] = "true"
    return FastJSONResponse(record.to_public(), status_code=202, headers=headers)


@router.get("", response_model=JobsPage, responses=problem_responses(401, 422))
async def list_experiments(
    services: ServicesDep,
    owner: OwnerDep,
    status: Annotated[JobStatus | None, Query(description="only jobs with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="jobs per page")] = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """Jobs, newest first, one page at a time (with API keys, the key owner's only)."""
    mine = None if services.access.open else owner
    page = await read_page(
        services.store.list_jobs(status=status, limit=limit, cursor=cursor, owner=mine)
    )
    items = [record.to_public() for record in page.items]
    return FastJSONResponse({"items": items, "next_cursor": page.next_cursor})


@router.get("/{job_id}", response_model=JobPublic, responses=problem_responses(401, 404))
async def read_experiment(job_id: JobId, services: ServicesDep, owner: OwnerDep) -> Response:
    """One job's record: status, progress, worker, summary."""
    # A found record is usually answered before this route, by api.hot_reads.
    record = await services.store.get(job_id) if is_job_id(job_id) else None
    if record is None or not services.access.may_see(owner, record.owner):
        raise job_not_found(job_id)
    return record_response(record)


@router.get(
    "/{job_id}/result",
    response_class=Response,
    responses={
        200: {"model": ExperimentResult, "description": "result.json (core.experiment.result)"},
        304: NOT_MODIFIED,
        **problem_responses(401, 404, 409),
    },
)
async def read_result(
    job_id: OwnedJobId, services: ServicesDep, if_none_match: IfNoneMatch = None
) -> Response:
    """The full result: every captured series, metrics and diagnosis (409 until it succeeded);
    ETag and 304 supported."""
    stored = await services.store.get_result(job_id)
    if stored.status is None:
        raise job_not_found(job_id)
    if stored.content is None:
        raise job_not_succeeded(job_id, stored.status.value, "a result")
    return stored_file_response(
        stored.content,
        "application/json",
        cache_control=services.access.immutable,
        if_none_match=if_none_match,
    )


@router.get(
    "/{job_id}/arrays.npz",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "NumPy .npz"},
        304: NOT_MODIFIED,
        **problem_responses(401, 404, 409),
    },
)
async def read_arrays(
    job_id: OwnedJobId, services: ServicesDep, if_none_match: IfNoneMatch = None
) -> Response:
    """The raw captured tensors as a NumPy .npz (when the spec asked for capture.raw)."""
    stored = await services.store.get_arrays(job_id)
    if stored.status is None:
        raise job_not_found(job_id)
    if stored.content is None:
        if stored.status is not JobStatus.SUCCEEDED:
            raise job_not_succeeded(job_id, stored.status.value, "an arrays.npz")
        raise Problem(
            404,
            "No arrays",
            f"experiment {job_id} did not capture raw arrays (set capture.raw to true)",
            kind="no-arrays",
        )
    return stored_file_response(
        stored.content,
        "application/octet-stream",
        cache_control=services.access.immutable,
        if_none_match=if_none_match,
        headers={"Content-Disposition": f'attachment; filename="{job_id}.npz"'},
    )


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    responses={202: {"model": JobPublic}, **problem_responses(401, 404, 409)},
)
async def cancel_experiment(job_id: OwnedJobId, store: StoreDep) -> Response:
    """Cancel: a queued job at once (200), a running one within about a second (202)."""
    outcome = await store.request_cancel(job_id)
    if outcome is None:
        raise job_not_found(job_id)
    if outcome.before in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise already_finished(
            "experiment", job_id, outcome.before.value, status_field="job_status"
        )
    status_code = 202 if outcome.record.status is JobStatus.RUNNING else 200
    return FastJSONResponse(outcome.record.to_public(), status_code=status_code)


@router.post("/{job_id}/remedies", **accepted(StudyPublic, 400, 401, 404, 409, 422, 429))
async def prove_remedies(
    run: ExistingJob, services: ServicesDep, owner: OwnerDep, body: RemedyBody
) -> Response:
    """Prove the run's prescriptions: a study of its spec (`baseline`) and each fix, over
    the same seeds; 202, the study, Location. 409 until the run succeeded."""
    return study_accepted(await prove_experiment(services, run, body, owner))


@router.delete("/{job_id}", status_code=204, responses=problem_responses(401, 404))
async def delete_experiment(job_id: OwnedJobId, store: StoreDep) -> Response:
    """Delete the job and everything stored for it; a running job stops within about a second."""
    if not await store.delete(job_id):
        raise job_not_found(job_id)
    return Response(status_code=204)
