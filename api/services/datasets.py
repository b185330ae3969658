"""Datasets: an upload read, checked and kept for its owner, and an owned one found.

Parsing is CPU work of up to a second or two for the largest files, so it runs
in a thread and the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread

from api.deps import Services
from api.errors import Problem, field_problem
from api.services.uploads import Upload
from core.datasets.uploaded import (
    DatasetFileError,
    ParsedDataset,
    Task,
    UploadLimits,
    pack,
    parse_dataset,
)
from core.experiment.jobs import is_job_id
from core.experiment.limits import Limits, SpecLimitError
from core.experiment.sizing import check_limits
from core.experiment.spec import DatasetKind, ExperimentSpec, UploadedData
from core.settings import Settings
from core.store.datasets import DatasetPut, DatasetRecord, TooManyDatasets

NAME_LENGTH = 200

# What each kind of file error answers; anything else is a 422.
_STATUS = {"dataset-too-large": 413, "unsupported-dataset": 415}


def dataset_not_found(dataset_id: str) -> Problem:
    return Problem(404, "Dataset not found", f"no dataset with id {dataset_id!r}", kind="not-found")


def upload_limits(settings: Settings) -> UploadLimits:
    """What one upload may hold, from the settings."""
    return UploadLimits(
        samples=settings.dataset_max_samples,
        features=settings.dataset_max_features,
        classes=settings.dataset_max_classes,
        values=Limits.DATA_VALUES,
    )


async def keep_upload(
    services: Services, owner: str, upload: Upload, *, label: str, task: Task, name: str | None
) -> DatasetPut:
    """The owner's dataset of `upload`: new, or the one the same upload made before.

    A problem naming the row and column or the array for a file that cannot be a
    dataset (nothing is kept), and a 409 at the owner's limit of datasets.
    """
    settings = services.settings
    try:
        data = await anyio.to_thread.run_sync(
            lambda: parse_dataset(
                upload.body, limits=upload_limits(settings), label=label, task=task
            )
        )
    except DatasetFileError as error:
        raise _refused(error) from None
    packed = await anyio.to_thread.run_sync(pack, data)
    meta = _meta(
        data,
        name=(name or upload.filename or "dataset")[:NAME_LENGTH],
        size=len(upload.body),
        stored=len(packed),
    )
    dedupe = hashlib.sha256(f"{data.content_hash}\n{data.label}\n{task}".encode()).hexdigest()
    try:
        return await services.store.put_dataset(
            owner=owner,
            meta=meta,
            packed=packed,
            dedupe_key=dedupe,
            max_datasets=settings.datasets_per_owner,
        )
    except TooManyDatasets as error:
        raise Problem(
            409,
            "Too many datasets",
            f"{error.count} datasets kept, the limit of GRADWATCH_DATASETS_PER_OWNER "
            f"({settings.datasets_per_owner}); delete one first",
            kind="too-many-datasets",
            errors=[{"field": "datasets", "reason": "over the limit per owner"}],
        ) from error


def _refused(error: DatasetFileError) -> Problem:
    return field_problem(
        _STATUS.get(error.kind, 422),
        "Unusable dataset",
        error.where,
        error.reason,
        kind=error.kind,
        detail=f"{error.where}: {error.reason}; nothing was kept",
    )


def _meta(data: ParsedDataset, *, name: str, size: int, stored: int) -> dict[str, Any]:
    target_range = data.target_range
    return {
        "name": name,
        "format": data.format,
        "task": data.task.value,
        "label": data.label,
        "samples": data.samples,
        "sample_shape": list(data.sample_shape),
        "features": int(data.x[0].size),
        "classes": data.classes,
        "target_range": None if target_range is None else list(target_range),
        "size": size,
        "stored_size": stored,
        "content_hash": data.content_hash,
    }


async def owned_dataset(services: Services, owner: str, dataset_id: str) -> DatasetRecord:
    """The dataset, when `owner` may see it; a 404 problem (the same for another owner's
    as for an unknown one) otherwise."""
    record = await services.store.get_dataset(dataset_id) if is_job_id(dataset_id) else None
    if record is None or not services.access.may_see(owner, record.owner):
        raise dataset_not_found(dataset_id)
    return record


# ------------------------------------------------------------- datasets in specs


def _unknown(field: str, dataset_id: object) -> Problem:
    reason = f"no dataset with id {dataset_id!r} (POST /v1/datasets makes one)"
    return field_problem(422, "Unknown dataset", field, reason, kind="unknown-dataset")


async def uploaded_data(
    services: Services, owner: str, dataset_id: object, *, field: str
) -> UploadedData:
    """The shape and classes of the owner's dataset `dataset_id`, as a spec holds them; a
    422 problem naming `field` for an id that is not one of the owner's datasets."""
    if not isinstance(dataset_id, str) or not is_job_id(dataset_id):
        raise _unknown(field, dataset_id)
    record = await services.store.get_dataset(dataset_id)
    if record is None or not services.access.may_see(owner, record.owner):
        raise _unknown(field, dataset_id)
    meta = record.meta
    return UploadedData(
        name=meta["name"],
        samples=meta["samples"],
        sample_shape=meta["sample_shape"],
        classes=len(meta["classes"] or ()),
    )


async def with_uploaded_data(
    services: Services, owner: str, spec: ExperimentSpec
) -> ExperimentSpec:
    """`spec`, its uploaded dataset's shape and classes filled in from the store (whatever
    the client sent there) and every limit checked against them; a 422 problem otherwise."""
    dataset = spec.dataset
    if dataset.kind is not DatasetKind.UPLOADED:
        return spec
    dataset.data = await uploaded_data(services, owner, dataset.id, field="dataset.id")
    try:
        check_limits(spec)
    except SpecLimitError as error:
        raise Problem(
            422,
            "Invalid request",
            f"{error.field}: {error.message}",
            kind="invalid-request",
            errors=[{"field": error.field, "reason": error.message}],
        ) from None
    return spec


async def fill_study_datasets(services: Services, owner: str, body: Mapping[str, Any]) -> None:
    """Fill the shape and classes of each uploaded dataset a study body names, in its base
    or along a `dataset` axis, into the body (before it is validated)."""
    base = body.get("base")
    if isinstance(base, dict):
        await _fill(services, owner, base.get("dataset"), "base.dataset.id")
    axes = body.get("axes")
    values = axes.get("dataset") if isinstance(axes, dict) else None
    for index, value in enumerate(values if isinstance(values, list) else ()):
        await _fill(services, owner, value, f"axes.dataset[{index}].id")


async def _fill(services: Services, owner: str, dataset: object, field: str) -> None:
    if isinstance(dataset, dict) and dataset.get("kind") == DatasetKind.UPLOADED.value:
        data = await uploaded_data(services, owner, dataset.get("id"), field=field)
        dataset["data"] = data.model_dump(mode="json")


async def note_dataset_users(
    services: Services, specs: Sequence[ExperimentSpec], job_ids: Sequence[str]
) -> None:
    """Name the jobs that train on each uploaded dataset, so it is not deleted under them."""
    users: dict[str, list[str]] = {}
    for spec, job_id in zip(specs, job_ids, strict=True):
        if spec.dataset.kind is DatasetKind.UPLOADED and spec.dataset.id is not None:
            users.setdefault(spec.dataset.id, []).append(job_id)
    for dataset_id, jobs in users.items():
        # False: deleted meanwhile; the jobs then fail saying so (core.datasets.uploaded).
        await services.store.use_dataset(dataset_id, jobs)
