"""Proving a run's prescriptions: the study of its own spec against each prescribed fix.

`POST /v1/experiments/{id}/remedies` and `POST /v1/studies/{id}/configs/{index}/remedies`
read the run's spec and result, plan the study (core/experiment/remedy_studies.py),
submit it as any study is submitted (api.services.submission: the owner's limits,
one step that makes every child) and link it from the record of what it proves.

The baseline is the run's spec with `training.graph` pinned to the kind of graph
that trained it (`result.timing.graph`), so the baseline's first seed repeats
the run itself, and every fix is trained on that kind too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import orjson

from api.deps import Services
from api.errors import Problem, job_not_found, job_not_succeeded
from api.services.studies import study_not_finished
from api.services.submission import invalid_study, submit_plan
from core.experiment.jobs import JobStatus
from core.experiment.merge_patch import merge_patch
from core.experiment.remedy_studies import NothingPrescribedError, RemedyRequest, plan_remedies
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import StudyError
from core.store.records import JobRecord, StudyRecord


async def prove_experiment(
    services: Services, run: JobRecord, request: RemedyRequest, owner: str
) -> StudyRecord:
    """The queued study proving `run`'s prescriptions; 409 unless it succeeded, 422 when
    it prescribes nothing or the request asks what it cannot."""
    if run.status is not JobStatus.SUCCEEDED:
        raise job_not_succeeded(run.id, run.status.value, "prescriptions to prove")
    source = {"kind": "experiment", "experiment": run.id}
    return await _prove(services, run.id, request, owner, source)


async def prove_study_config(
    services: Services, study: StudyRecord, index: int, request: RemedyRequest, owner: str
) -> StudyRecord:
    """The queued study proving the prescriptions of configuration `index` of `study`, as
    its first seed that succeeded got them; 404 for no such configuration, 409 until the
    study has finished, or when none of the configuration's seeds succeeded."""
    if not 0 <= index < len(study.configs):
        raise Problem(
            404,
            "Configuration not found",
            f"study {study.id} has configurations 0 to {len(study.configs) - 1}, not {index}",
            kind="not-found",
        )
    if not study.status.finished:
        raise study_not_finished(study, "prescriptions")
    seeds = study.children[index * study.seeds : (index + 1) * study.seeds]
    run = next((child for child in seeds if child.status == JobStatus.SUCCEEDED.value), None)
    if run is None:
        raise Problem(
            409,
            "Configuration has no run",
            f"no seed of configuration {index} of study {study.id} succeeded: nothing "
            "was diagnosed",
            kind="not-succeeded",
        )
    source = {"kind": "study_config", "study": study.id, "config": index, "experiment": run.id}
    return await _prove(services, run.id, request, owner, source)


async def _prove(
    services: Services,
    run_id: str,
    request: RemedyRequest,
    owner: str,
    source: Mapping[str, Any],
) -> StudyRecord:
    limit = services.settings.remedy_max_seeds
    if request.seeds > limit:
        reason = f"{request.seeds} seeds exceed this server's limit of {limit}"
        raise invalid_study(StudyError([{"field": "seeds", "reason": reason}]))
    spec, diagnosis = await _run_as_trained(services, run_id)
    try:
        plan = plan_remedies(spec, diagnosis, request, source=source)
    except NothingPrescribedError as error:
        raise Problem(
            422,
            "Nothing prescribed",
            f"{error}; GET /v1/verdicts lists what each verdict prescribes",
            kind="nothing-prescribed",
            verdicts=error.verdicts,
        ) from error
    except StudyError as error:
        raise invalid_study(error) from error
    study = await submit_plan(services, plan, owner)
    await services.studies.link_remedy_study(study.id, source=source)
    return study


async def _run_as_trained(services: Services, run_id: str) -> tuple[ExperimentSpec, Any]:
    """The run's spec on the kind of graph that trained it, and its diagnosis."""
    stored = await services.store.get_result(run_id)
    if stored.status is None:
        raise job_not_found(run_id)
    content = stored.content
    if content is None:
        raise job_not_succeeded(run_id, stored.status.value, "prescriptions to prove")

    def read() -> tuple[ExperimentSpec, Any]:
        result = orjson.loads(content)  # megabytes, at times: off the event loop
        graph = (result.get("timing") or {}).get("graph")
        pinned = {"training": {"graph": graph}} if graph else {}
        spec = ExperimentSpec.model_validate(merge_patch(result["spec"], pinned))
        return spec, result["diagnosis"]

    return await anyio.to_thread.run_sync(read)
