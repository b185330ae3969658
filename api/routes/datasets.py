"""Datasets: upload a CSV or an NPZ once, list, read and delete them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from api.deps import DEFAULT_PAGE, MAX_PAGE, Cursor, OwnerDep, ServicesDep
from api.errors import Problem, read_page
from api.responses import FastJSONResponse
from api.schemas import DatasetPublic, DatasetsPage, problem_responses
from api.services.datasets import NAME_LENGTH, dataset_not_found, keep_upload, owned_dataset
from api.services.uploads import FORM_FIELD, RAW_TYPES, read_upload
from core.datasets.uploaded import Task

router = APIRouter(prefix="/datasets", tags=["datasets"])

DatasetId = Annotated[
    str, Path(description="the dataset's id (a ULID)", examples=["01JD8X3Q7R5M2N4P6T8V0W2Y4Z"])
]

_BINARY = {"schema": {"type": "string", "format": "binary"}}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a CSV (header row, numeric features, a label column) or an NPZ of "
        "arrays `x` and `y`: as a form's `file` field, or as the body itself",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {FORM_FIELD: {"type": "string", "format": "binary"}},
                    "required": [FORM_FIELD],
                }
            },
            **{media_type: _BINARY for media_type in sorted(RAW_TYPES)},
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    responses={
        200: {"model": DatasetPublic, "description": "the same upload, kept before"},
        **problem_responses(400, 401, 409, 413, 415, 422),
    },
    openapi_extra=UPLOAD_BODY,
)
async def create_dataset(
    request: Request,
    services: ServicesDep,
    owner: OwnerDep,
    label: Annotated[
        str, Query(min_length=1, max_length=NAME_LENGTH, description="a CSV's label column")
    ] = "label",
    task: Annotated[
        Task, Query(description="numbers in the label column are classes unless regression")
    ] = Task.CLASSIFICATION,
    name: Annotated[
        str | None, Query(min_length=1, max_length=NAME_LENGTH, description="default: file name")
    ] = None,
) -> Response:
    """Upload a CSV or an NPZ: 201 and the dataset (200 and the same one for the same
    upload again)."""
    upload = await read_upload(request)
    put = await keep_upload(services, owner, upload, label=label, task=task, name=name)
    headers = {"Location": f"/v1/datasets/{put.record.id}"}
    status_code = 201 if put.new else 200
    return FastJSONResponse(put.record.to_public(), status_code=status_code, headers=headers)


@router.get("", response_model=DatasetsPage, responses=problem_responses(401, 422))
async def list_datasets(
    services: ServicesDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="datasets per page")] = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """The caller's datasets, newest first, one page at a time."""
    page = await read_page(services.store.list_datasets(owner=owner, limit=limit, cursor=cursor))
    items = [record.to_public() for record in page.items]
    return FastJSONResponse({"items": items, "next_cursor": page.next_cursor})


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=problem_responses(401, 404))
async def read_dataset(dataset_id: DatasetId, services: ServicesDep, owner: OwnerDep) -> Response:
    """One dataset: its shape, classes or target range, size and content hash."""
    record = await owned_dataset(services, owner, dataset_id)
    return FastJSONResponse(record.to_public())


@router.delete("/{dataset_id}", status_code=204, responses=problem_responses(401, 404, 409))
async def delete_dataset(dataset_id: DatasetId, services: ServicesDep, owner: OwnerDep) -> Response:
    """Delete the dataset (409 while a queued or running experiment trains on it)."""
    await owned_dataset(services, owner, dataset_id)
    deletion = await services.store.delete_dataset(dataset_id)
    if deletion.missing:
        raise dataset_not_found(dataset_id)
    if not deletion.deleted:
        shown = ", ".join(deletion.busy[:10])
        raise Problem(
            409,
            "Dataset in use",
            f"dataset {dataset_id} is used by {len(deletion.busy)} queued or running "
            f"experiment(s) ({shown}); cancel them or wait for them to finish",
            kind="dataset-in-use",
            jobs=deletion.busy,
        )
    return Response(status_code=204)
