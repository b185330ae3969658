"""Submission: an owner's experiment or study admitted against its limits and stored.

Experiments and studies go through the same two gates: the owner's per-minute
submissions and queued-or-running jobs are counted first (a 429 naming the limit
that refused), then the jobs are made in one step that checks the active-jobs
limit again, so concurrent submissions cannot pass it together. A stored job
waits on its queue's dispatcher (core.store.dispatch) until a worker claims it:
the API sends nothing.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import orjson

from api.access import limit_refused
from api.deps import Services
from api.errors import Problem
from api.services.datasets import fill_study_datasets, note_dataset_users, with_uploaded_data
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import StudyError, StudyPlan, expand_study, parse_study
from core.plotting.catalog import planned_study_plots
from core.plotting.study.remedies import REMEDIES
from core.store.admission import ACTIVE_LIMIT_RETRY_AFTER, Refusal, TooManyActiveJobs
from core.store.jobs import Created, IdempotencyKeyReused
from core.store.records import StudyRecord

T = TypeVar("T")


async def submit_experiment(
    services: Services, spec: ExperimentSpec, owner: str, idempotency_key: str | None
) -> Created:
    """The queued job for `spec`, or the one an earlier request with this key made."""
    spec = await with_uploaded_data(services, owner, spec)

    def create(max_active: int) -> Awaitable[Created]:
        return services.store.create(
            spec=spec,
            queue=services.settings.queue_for(spec.device),
            idempotency_key=idempotency_key,
            fingerprint=fingerprint(spec),
            owner=owner,
            max_active=max_active,
        )

    try:
        created = await _admitted(services, owner, 1, create)
    except IdempotencyKeyReused as error:
        raise Problem(
            422,
            "Idempotency-Key reused",
            f"this Idempotency-Key was first sent with another body (job {error.job_id})",
            kind="idempotency-key-reused",
            errors=[{"field": "Idempotency-Key", "reason": "already used with another body"}],
        ) from error
    if created.new:
        await note_dataset_users(services, [spec], [created.record.id])
    return created


async def submit_study(services: Services, body: Mapping[str, Any], owner: str) -> StudyRecord:
    """The queued study `body` asks for, with one queued experiment per configuration and
    seed; a 422 problem naming each bad field."""
    body = copy.deepcopy(dict(body))
    await fill_study_datasets(services, owner, body)
    return await submit_plan(services, plan_study(body), owner)


async def submit_plan(services: Services, plan: StudyPlan, owner: str) -> StudyRecord:
    """The queued study of a validated `plan`, with its experiments."""
    studies = services.studies

    def create(max_active: int) -> Awaitable[StudyRecord]:
        return studies.create_study(
            plan=plan,
            queues=[services.settings.queue_for(spec.device) for spec in plan.children],
            plots=planned_study_plots(plan.children) + remedy_plots(plan),
            owner=owner,
            max_active=max_active,
            members=services.settings.ensemble_members,
        )

    record = await _admitted(services, owner, len(plan.children), create)
    await note_dataset_users(services, plan.children, [child.id for child in record.children])
    return await studies.get_study(record.id) or record


def remedy_plots(plan: StudyPlan) -> list[str]:
    """The plot only a remedy study has (core.plotting.study.remedies): its specs do not
    say they are one, its request does."""
    return [REMEDIES.name] if plan.request.get("remedies") is not None else []


def plan_study(body: Mapping[str, Any]) -> StudyPlan:
    """The validated study, or a 422 problem naming each bad field."""
    try:
        return expand_study(parse_study(body))
    except StudyError as error:
        raise invalid_study(error) from None


def invalid_study(error: StudyError) -> Problem:
    """The 422 problem naming each field a StudyError names."""
    detail = "; ".join(f"{item['field']}: {item['reason']}" for item in error.errors)
    return Problem(422, "Invalid study", detail, kind="invalid-study", errors=error.errors)


def fingerprint(spec: ExperimentSpec) -> str:
    """A hash of what the client asked for (fields it set, not a drawn seed)."""
    asked = spec.model_dump(mode="json", exclude_unset=True)
    return hashlib.sha256(orjson.dumps(asked, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


async def _admitted(
    services: Services, owner: str, jobs: int, create: Callable[[int], Awaitable[T]]
) -> T:
    """What `create` makes once `owner` may add `jobs` jobs; a 429 problem when a limit
    refuses. `create` is given the active-jobs limit to check again (0: none)."""
    access = services.access
    if not access.open:
        refusal = await services.store.admit(
            owner,
            jobs=jobs,
            per_minute=access.submissions_per_minute,
            max_active=access.max_active_jobs,
        )
        if refusal is not None:
            raise limit_refused(refusal, access)
    try:
        return await create(0 if access.open else access.max_active_jobs)
    except TooManyActiveJobs as error:
        refusal = Refusal("max_active_jobs", ACTIVE_LIMIT_RETRY_AFTER, error.active)
        raise limit_refused(refusal, access) from error
