"""The documents the service answers with, as typed dictionaries (the JSON as it comes).

They mirror the API's OpenAPI schemas (`JobPublic`, `StudyPublic`, ...) for the
fields a script reads; a newer service may send more, which are kept.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Progress(TypedDict):
    epoch: int
    epochs: int


class Summary(TypedDict, total=False):
    loss: float | None
    accuracy: float | None
    verdicts: list[str]
    diverged: bool
    gradient_ratio: float | None
    baseline_loss: float | None  # a regression's (it has no accuracy); null for classification


class Job(TypedDict):
    id: str
    status: Status
    queue: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: Progress
    cancel_requested: bool
    error: dict[str, str] | None
    summary: Summary | None
    plots: list[str]
    remedy_studies: list[str]
    spec: dict[str, Any]


class StudyProgress(TypedDict):
    children: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    missing: int  # children whose records were deleted or expired
    finished: int
    epoch: int  # epochs trained so far, over every child
    epochs: int


class Study(TypedDict):
    id: str
    status: Status
    name: str | None
    preset: str | None
    created_at: str
    progress: StudyProgress
    axes: dict[str, list[Any]]
    seeds: int
    configs: list[dict[str, Any]]
    summary: dict[str, Any] | None
    plots: list[str]
    remedy_studies: list[str]


class Dataset(TypedDict):
    id: str
    name: str
    format: Literal["csv", "npz"]
    task: Literal["classification", "regression"]
    label: str | None
    samples: int
    sample_shape: list[int]
    features: int
    classes: list[str] | None
    target_range: list[float] | None
    size: int
    stored_size: int
    content_hash: str
    created_at: str


class PlotLink(TypedDict):
    name: str
    description: str
    url: str


class PlotSize(TypedDict, total=False):
    """A plot's size where not the default: pixels wide and high, and dots per inch."""

    width: int
    height: int
    dpi: int


class Page(TypedDict):
    items: list[dict[str, Any]]
    next_cursor: str | None
