"""Datasets: an upload read, checked and kept for its owner, and an owned one found.

Parsing is CPU work of up to a second or two for the largest files, so it runs
in a thread and the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio.to_thread

from api.deps import Services
from api.errors import Problem
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
from core.experiment.spec import Limits
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
    return Problem(
        _STATUS.get(error.kind, 422),
        "Unusable dataset",
        f"{error.where}: {error.reason}; nothing was kept",
        kind=error.kind,
        errors=[{"field": error.where, "reason": error.reason}],
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
