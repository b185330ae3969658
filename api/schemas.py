"""What clients send and are shown: the OpenAPI shapes of the API.

A client sends an `ExperimentSpec` (core.experiment.spec); it is shown a `JobPublic`,
pages of them (`JobsPage`), plot links, presets and problems. Hot routes build
these documents directly (see `JobRecord.to_public`) and return them without
re-validation; the models here describe them at /docs and keep the two honest
in the tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Body
from pydantic import BaseModel, Field

from core.experiment.jobs import JobStatus
from core.experiment.remedy_studies import RemedyRequest
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import StudyRequest


class JobProgress(BaseModel):
    epoch: int = Field(description="epochs finished so far")
    epochs: int = Field(description="epochs the run will train")


class JobWorker(BaseModel):
    hostname: str
    device: str = Field(description="cpu or gpu")
    device_name: str = Field(description="CPU, or the GPU's name")
    tensorflow: str


class JobError(BaseModel):
    type: str = Field(description="what went wrong, e.g. TooManyDeliveries, TimeLimitExceeded")
    message: str


class JobSummary(BaseModel):
    loss: float | None = Field(description="training loss after the last epoch")
    accuracy: float | None = Field(
        description="training accuracy after the last epoch; null for a regression"
    )
    verdicts: list[str] = Field(description="diagnoses, e.g. vanishing, exploding, dead_units")
    diverged: bool
    gradient_ratio: float | None = Field(
        None,
        description="the first hidden layer's RMS kernel gradient over the output layer's "
        "(median over the run): under 0.1 is `vanishing`, over 1000 `exploding`",
    )
    baseline_loss: float | None = Field(
        None,
        description="a regression's: the loss of always predicting the mean target "
        "(a run that learned is far under it)",
    )


class JobPublic(BaseModel):
    """An experiment job as clients see it."""

    id: str = Field(examples=["01JD8X3Q7R5M2N4P6T8V0W2Y4Z"])
    status: JobStatus
    queue: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: JobProgress
    cancel_requested: bool
    deliveries: int = Field(description="times a worker has picked the job up")
    worker: JobWorker | None
    error: JobError | None
    summary: JobSummary | None
    plots: list[str] = Field(description="plots rendered at the default size when it finished")
    spec: ExperimentSpec
    remedy_studies: list[str] = Field(
        description="ids of the studies that prove this run's prescriptions "
        "(POST /v1/experiments/{id}/remedies; GET /v1/studies/{id}), oldest first"
    )


class PlotLink(BaseModel):
    name: str
    description: str
    url: str = Field(description="the PNG at its default size; add width, height, dpi")


class PlotList(BaseModel):
    items: list[PlotLink]


class ShareLink(BaseModel):
    """A signed link to one plot at one size: no API key needed until it expires."""

    url: str = Field(description="the PNG, with `expires` and `sig` query parameters")
    expires: int = Field(description="when the link stops working (Unix seconds)")
    expires_at: datetime


class PresetPublic(BaseModel):
    name: str
    title: str
    description: str
    spec: ExperimentSpec = Field(description="a spec to POST to /v1/experiments as it is")


class StudyPresetPublic(BaseModel):
    name: str
    title: str
    description: str
    study: StudyCreate = Field(description="a body to POST to /v1/studies as it is")


class PresetList(BaseModel):
    items: list[PresetPublic]
    studies: list[StudyPresetPublic] = Field(description="comparison studies (POST /v1/studies)")


class FieldError(BaseModel):
    field: str = Field(description="dotted path of the field, e.g. training.epochs")
    reason: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem document (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str
    errors: list[FieldError] | None = None


class Reference(BaseModel):
    """A paper to read, with a stable link."""

    key: str = Field(examples=["glorot2010"])
    authors: str
    year: int
    title: str
    venue: str
    url: str


class VerdictExplanation(BaseModel):
    """One verdict kind for people: what it means, why it happens, where to read more."""

    verdict: str = Field(examples=["vanishing"])
    title: str
    meaning: str
    cause: str
    read_more: list[Reference]


class VerdictPublic(VerdictExplanation):
    fixes: list[str] = Field(
        description="the fixes this verdict can prescribe, in the textbook's order (a run's "
        "`diagnosis.prescriptions` ranks those that apply to it by what was measured)"
    )


class VerdictList(BaseModel):
    items: list[VerdictPublic]


class Health(BaseModel):
    status: str


# The answer to a matching If-None-Match, for `responses=`.
NOT_MODIFIED: dict[str, Any] = {"description": "If-None-Match matched: not modified"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem documents for `statuses`, and
    503: every route that reads or writes the store answers it while Redis cannot serve."""
    return {
        status: {
            "model": ProblemDetails,
            "content": {"application/problem+json": {}},
        }
        for status in sorted({*statuses, 503})
    }


def accepted(model: type[BaseModel], *statuses: int) -> dict[str, Any]:
    """The decorator arguments of a route that queues work: 202 with `model` (the queued
    record, its Location in the headers) and problem documents for `statuses`."""
    return {"status_code": 202, "response_model": model, "responses": problem_responses(*statuses)}


def stream_responses(events: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` of a route that streams a record's `events` as Server-Sent
    Events, resumable by Last-Event-ID, with problem documents for `statuses`."""
    return {
        200: {"description": f"text/event-stream of {events}"},
        204: {"description": "the stream already ended before Last-Event-ID"},
        **problem_responses(*statuses),
    }


# The responses of a route that answers a plot's PNG (an experiment's or a study's).
PNG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "the PNG"},
    304: NOT_MODIFIED,
    **problem_responses(401, 403, 404, 409, 422),
}


# --------------------------------------------------------------------------- studies


class StudyCreate(StudyRequest):
    """A study to run: a base spec, axes of values to vary and seeds; or a preset's name."""

    base: ExperimentSpec = Field(  # type: ignore[assignment]  # read as a dict, a partial spec
        default_factory=ExperimentSpec,
        description="the experiment spec each configuration starts from; `{}` is the tutorial",
    )


class StudyChild(BaseModel):
    id: str = Field(description="the child experiment's id (GET /v1/experiments/{id})")
    status: str = Field(description="a job status, or missing once its record is gone")
    epoch: int
    epochs: int


class StudyConfigPublic(BaseModel):
    index: int
    label: str = Field(examples=["activation=relu"])
    values: dict[str, Any] = Field(description="axis path -> this configuration's value")
    children: list[StudyChild] = Field(description="one experiment per seed")


class StudyProgress(BaseModel):
    children: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    missing: int = Field(description="children whose records were deleted or expired")
    finished: int
    epoch: int = Field(description="epochs trained so far, over every child")
    epochs: int


class StudyStat(BaseModel):
    n: int = Field(description="finite values over the configuration's succeeded seeds")
    mean: float | None
    std: float | None = Field(description="sample S.D. over seeds (null below 2 values)")
    min: float | None
    max: float | None


class StudyRow(BaseModel):
    config: int
    label: str
    values: dict[str, Any]
    seeds: int
    succeeded: int
    failed: int
    cancelled: int
    loss: StudyStat = Field(description="training loss after the last epoch")
    accuracy: StudyStat = Field(
        description="training accuracy after the last epoch (n 0 for a regression)"
    )
    baseline_loss: StudyStat | None = Field(
        None,
        description="a regression's: the loss of always predicting the mean target, which "
        "says what `loss` means (a configuration that solved the task is far under it); n 0 "
        "for classification; absent from summaries sealed before it was kept",
    )
    diverged: int
    verdicts: dict[str, int] = Field(description="diagnosis -> seeds that got it")
    children: list[str]


class RemedyVerdict(BaseModel):
    """One verdict a fix was prescribed for, over the seeds both runs finished."""

    verdict: str = Field(examples=["vanishing"])
    baseline: int = Field(description="seeds whose baseline run had the verdict")
    cleared: int = Field(description="of those, seeds whose run with the fix did not")
    after: int = Field(description="seeds whose run with the fix has the verdict")


class GradientRatioChange(BaseModel):
    """The first-to-last RMS kernel gradient ratio (`summary.gradient_ratio`), median
    over the seeds, of the baseline and of the fix."""

    before: float | None
    after: float | None


class RemedyFixOutcome(BaseModel):
    """What one fix did against the baseline, seed by seed."""

    fix: str = Field(examples=["tanh"])
    config: int = Field(description="its configuration in the study")
    seeds: int = Field(description="seeds where both it and the baseline succeeded")
    verdicts: list[RemedyVerdict] = Field(description="the verdicts it was prescribed for")
    new_verdicts: dict[str, int] = Field(
        description="verdicts it brought that the baseline did not have -> seeds"
    )
    accuracy_change: StudyStat = Field(
        description="its final accuracy minus the baseline's, seed by seed"
    )
    loss_change: StudyStat = Field(description="its final loss minus the baseline's, seed by seed")
    gradient_ratio: GradientRatioChange


class RemedyBaseline(BaseModel):
    config: int = Field(description="0: the run's own spec")
    seeds: int = Field(description="seeds whose baseline run succeeded")
    verdicts: dict[str, int] = Field(description="diagnosis -> seeds that got it")
    gradient_ratio: float | None = Field(description="median over the seeds")


class RemedySummary(BaseModel):
    """A remedy study's finding: per fix, whether the verdict cleared and at what cost."""

    baseline: RemedyBaseline
    fixes: list[RemedyFixOutcome]


class StudyOutcome(BaseModel):
    rows: list[StudyRow]
    remedies: RemedySummary | None = Field(
        None, description="a remedy study's: what each fix did against the baseline"
    )


class StudySummary(BaseModel):
    """One row per configuration: final loss and accuracy as mean and spread over seeds."""

    id: str
    status: JobStatus
    axes: list[str]
    seeds: int
    rows: list[StudyRow]
    remedies: RemedySummary | None = Field(
        None, description="a remedy study's: what each fix did against the baseline"
    )


class ExperimentSource(BaseModel):
    kind: Literal["experiment"]
    experiment: str = Field(description="the run's id (GET /v1/experiments/{id})")


class StudyConfigSource(BaseModel):
    kind: Literal["study_config"]
    study: str = Field(description="the study's id (GET /v1/studies/{id})")
    config: int = Field(description="the configuration's index in it")
    experiment: str = Field(
        description="the configuration's first seed that succeeded: the run whose spec is "
        "the baseline and whose diagnosis prescribed the fixes"
    )


RemedySource = Annotated[ExperimentSource | StudyConfigSource, Field(discriminator="kind")]


class PrescribedFix(BaseModel):
    patch: dict[str, Any] = Field(description="the JSON merge patch (RFC 7396) it applied")
    verdicts: list[str] = Field(description="the verdicts it was prescribed for")


class RemedyPlan(BaseModel):
    """What a remedy study proves: the run it started from, and the fixes it tries."""

    source: RemedySource
    fixes: dict[str, PrescribedFix] = Field(description="fix -> its patch, in the study's order")


class StudyPublic(BaseModel):
    """A comparison study as clients see it."""

    id: str
    status: JobStatus
    name: str | None
    preset: str | None
    created_at: datetime
    started_at: datetime | None = Field(description="when its first child started")
    finished_at: datetime | None = Field(description="when its last child finished")
    progress: StudyProgress
    cancel_requested: bool
    axes: dict[str, list[Any]]
    seeds: int
    seed: int = Field(description="the first seed; seed number k runs with seed + k")
    configs: list[StudyConfigPublic]
    summary: StudyOutcome | None = Field(description="once finished")
    plots: list[str] = Field(description="the study's plots, once finished")
    base: ExperimentSpec = Field(
        description="the base spec the axes vary, as it was given (its seed is `seed`)"
    )
    remedies: RemedyPlan | None = Field(
        description="a remedy study's: the run whose prescriptions it proves, and the fixes"
    )
    remedy_studies: list[str] = Field(
        description="ids of the studies that prove a configuration's prescriptions "
        "(POST /v1/studies/{id}/configs/{index}/remedies), oldest first"
    )


# -------------------------------------------------------------------------- datasets


class DatasetPublic(BaseModel):
    """An uploaded dataset as clients see it; train on it with
    `{"dataset": {"kind": "uploaded", "id": ...}}`."""

    id: str = Field(examples=["01JD8X3Q7R5M2N4P6T8V0W2Y4Z"])
    name: str = Field(description="the file's name, or the `name` query parameter")
    format: Literal["csv", "npz"]
    task: Literal["classification", "regression"]
    label: str | None = Field(description="a CSV's label column (null for an NPZ)")
    samples: int
    sample_shape: list[int] = Field(
        description="one sample's shape: [features], [steps, features] or [height, width, channels]"
    )
    features: int = Field(description="values in one sample")
    classes: list[str] | None = Field(
        description="class names, in the order of the network's outputs (null: regression)"
    )
    target_range: list[float] | None = Field(
        description="a regression's smallest and largest target (null: classification)"
    )
    size: int = Field(description="bytes as uploaded")
    stored_size: int = Field(description="bytes kept, compressed")
    content_hash: str = Field(description="sha256 of the bytes as uploaded")
    created_at: datetime


RemedyBody = Annotated[
    RemedyRequest,
    Body(
        default_factory=RemedyRequest,
        description="the fixes to prove (the run's `diagnosis.prescriptions`) and the seeds "
        "each configuration runs over (at most the server's `remedy_max_seeds`); `{}` (or no "
        "body) is every prescribed fix over 3 seeds",
        openapi_examples={
            "all": {"summary": "every prescribed fix, 3 seeds", "value": {}},
            "two": {
                "summary": "two fixes, 5 seeds",
                "value": {"fixes": ["tanh", "batch_norm"], "seeds": 5},
            },
        },
    ),
]


# --------------------------------------------------------------------------- events


class FollowedEvent(BaseModel):
    """One event of a stream following several records (`GET /v1/events?ids=...`): the
    record it is about and that record's own event (its SSE `event:` is the type:
    `state`, `progress`, `cancel_requested` or `child`; its `id:` is
    `<record id>/<stream id>`)."""

    id: str = Field(description="the experiment's or study's id")
    kind: str = Field(description="`experiment` or `study`")
    data: dict[str, Any] = Field(description="the event as that record's own stream sends it")


class StreamInterrupted(BaseModel):
    """The last event (`event: interrupted`) of a stream the server stopped serving (Redis
    went away, or the client read too slowly): reconnect with Last-Event-ID."""

    detail: str


# ---------------------------------------------------------------------------- pages

Item = TypeVar("Item")


class CursorPage(BaseModel, Generic[Item]):
    """The shape of every list: one page of items, and the cursor of the next (null: no
    more). Each list names its own subclass, which is what /docs shows."""

    items: list[Item]
    next_cursor: str | None


class JobsPage(CursorPage[JobPublic]):
    """Jobs newest first; pass `next_cursor` as `cursor` for the next page (null: no more)."""


class StudiesPage(CursorPage[StudyPublic]):
    """Studies newest first; pass `next_cursor` as `cursor` for the next page (null: no more)."""


class DatasetsPage(CursorPage[DatasetPublic]):
    """Datasets newest first; pass `next_cursor` as `cursor` for the next page (null: no more)."""
