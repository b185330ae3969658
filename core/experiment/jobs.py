"""A job as the store keeps it: its status, its record, its id.

The record lives in a Redis hash (see `core.store.keys`); `JobRecord.from_fields`
reads one and `JobRecord.to_public` is what clients see.

Example:
    >>> JobStatus.SUCCEEDED.finished
    True
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from core.access.api_keys import ANONYMOUS


class JobStatus(StrEnum):
    """Where a job is in its life: queued -> running -> one of the three finished states."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once nothing will change the job again."""
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# --------------------------------------------------------------------------- ids

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_JOB_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


class _MonotonicUlid:
    """ULIDs that strictly increase within this process, even within one millisecond.

    Ids made by different processes in the same millisecond still order arbitrarily.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def __call__(self, now: float | None = None) -> str:
        millis = int((time.time() if now is None else now) * 1000)
        with self._lock:
            value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
            if value <= self._last:  # same millisecond (or a clock step back)
                value = self._last + 1
            self._last = value
        chars = []
        for _ in range(26):
            value, digit = divmod(value, 32)
            chars.append(_CROCKFORD[digit])
        return "".join(reversed(chars))


new_job_id = _MonotonicUlid()
"""A new job id: a ULID (48 bits of milliseconds, 80 random bits); ids sort by creation."""


def is_job_id(value: str) -> bool:
    """True when `value` has the shape of a job id (checked before touching Redis)."""
    return _JOB_ID.match(value) is not None


# ------------------------------------------------------------------------ tasks

# The Celery tasks that train a job (worker.tasks, worker.studies); core.queue sends them.
TRAIN_TASK = "gradwatch.train"
STUDY_CHILD_TASK = "gradwatch.train_study_child"
# Several children of a study that share a graph, trained side by side (core.engine.ensemble).
# Only a first send uses it: each child's record keeps its own STUDY_CHILD_TASK, so a
# reaper sends a child of a lost group again on its own.
STUDY_GROUP_TASK = "gradwatch.train_study_group"


def training_task(job_id: str) -> dict[str, Any]:
    """The task (name and kwargs) that trains job `job_id`, as its record keeps it."""
    return {"name": TRAIN_TASK, "kwargs": {"job_id": job_id}}


def study_child_task(job_id: str, study_id: str) -> dict[str, Any]:
    """The task that trains job `job_id`, a child of study `study_id`, then updates the study."""
    return {"name": STUDY_CHILD_TASK, "kwargs": {"job_id": job_id, "study_id": study_id}}


def study_group_task(job_ids: Sequence[str], study_id: str) -> dict[str, Any]:
    """The task that trains the children `job_ids` of study `study_id` in one graph."""
    return {"name": STUDY_GROUP_TASK, "kwargs": {"job_ids": list(job_ids), "study_id": study_id}}


def task_job_ids(kwargs: Mapping[str, Any] | None) -> list[str]:
    """The jobs a task's kwargs name: its `job_id`, or a group's `job_ids`."""
    kwargs = kwargs or {}
    if "job_ids" in kwargs:
        return [str(job_id) for job_id in kwargs["job_ids"] or []]
    return [str(kwargs["job_id"])] if kwargs.get("job_id") else []


# ------------------------------------------------------------------ record parts


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """The worker that ran (or runs) a job, and on which device."""

    hostname: str
    device: str  # "cpu" or "gpu"
    device_name: str  # "CPU" or the GPU's name
    tensorflow: str

    @classmethod
    def from_device_info(cls, hostname: str, info: Mapping[str, Any]) -> WorkerInfo:
        """From the engine's `device_info()` dict (kind, name, tensorflow)."""
        return cls(
            hostname=hostname,
            device=str(info.get("kind", "cpu")),
            device_name=str(info.get("name", "CPU")),
            tensorflow=str(info.get("tensorflow", "")),
        )

    def to_json_dict(self) -> dict[str, str]:
        return {
            "hostname": self.hostname,
            "device": self.device,
            "device_name": self.device_name,
            "tensorflow": self.tensorflow,
        }


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a job failed: an exception type name and a message for people."""

    type: str
    message: str

    MAX_MESSAGE = 1000

    def to_json_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message[: self.MAX_MESSAGE]}


# What a failed job tells its client of the exception: at most this many characters.
PUBLIC_MESSAGE_CHARS = 500

# A stack frame (`File "/abs/path.py", line 12, in f`) and the lines that open a stack
# (`Traceback (most recent call last):`, TensorFlow's `Detected at node X defined at
# (most recent call last):`); TensorFlow's node and op markers; an absolute path.
_FRAME = re.compile(r'^(\s*)File "[^"]*", line \d+')
_STACK_OPENING = re.compile(r"\(most recent call last\)")
_GRAPH_MARKER = re.compile(r"\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\]")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\])(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+)*[\\/]([\w.@+~-]+)")


def public_message(error: BaseException, *, limit: int = PUBLIC_MESSAGE_CHARS) -> str:
    """The exception's message for people: no stack frames, no absolute paths (a file
    is named by its name), on one line of at most `limit` characters.

    TensorFlow's runtime errors carry the Python stack the failing op was built in;
    the traceback, frames and all, belongs in the worker's log, not with clients.
    """
    kept: list[str] = []
    frame_indent: int | None = None
    for line in str(error).splitlines():
        frame = _FRAME.match(line)
        if frame is not None:
            frame_indent = len(frame.group(1))
            continue
        indent = len(line) - len(line.lstrip())
        if frame_indent is not None and line.strip() and indent > frame_indent:
            continue  # the source line a traceback shows under its frame
        frame_indent = None
        if not _STACK_OPENING.search(line):
            kept.append(line)
    text = _ABSOLUTE_PATH.sub(r"\1", _GRAPH_MARKER.sub(" ", " ".join(kept)))
    message = " ".join(text.split())
    if len(message) > limit:
        message = message[: limit - 1].rstrip() + "…"
    return message or type(error).__name__


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline numbers of a finished run."""

    loss: float | None
    accuracy: float | None
    verdicts: tuple[str, ...] = ()
    diverged: bool = False
    # The first hidden layer's RMS kernel gradient over the output layer's (the number
    # `vanishing` and `exploding` judge); what a study of fixes compares before and after.
    gradient_ratio: float | None = None

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Summary:
        """Read from a result.json dict (core.experiment.result): final metrics and diagnosis."""
        after = result.get("metrics", {}).get("after", {}) or {}
        diagnosis = result.get("diagnosis") or {}
        flow = (diagnosis.get("evidence") or {}).get("gradient_flow") or {}
        return cls(
            loss=_finite(after.get("loss")),
            accuracy=_finite(after.get("accuracy")),
            verdicts=tuple(str(verdict) for verdict in diagnosis.get("verdicts", [])),
            diverged=bool(result.get("diverged", False)),
            gradient_ratio=_finite(flow.get("first_to_last_rms_ratio")),
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "loss": _finite(self.loss),
            "accuracy": _finite(self.accuracy),
            "verdicts": list(self.verdicts),
            "diverged": self.diverged,
            "gradient_ratio": _finite(self.gradient_ratio),
        }


def dumps_compact(value: Any) -> str:
    """Strict, compact JSON for a record field."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


# ------------------------------------------------------------------------ record


def _text(fields: Mapping[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    return None if value is None else value.decode()


def _json(fields: Mapping[bytes, bytes], name: bytes) -> Any:
    value = fields.get(name)
    # orjson: reading records is the API's hottest path, and it parses 3-4x faster.
    return None if value is None else orjson.loads(value)


def _time(fields: Mapping[bytes, bytes], name: bytes) -> float | None:
    value = fields.get(name)
    return None if value is None else float(value)


def iso_time(seconds: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, e.g. 2025-01-02T03:04:05.678Z."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job, as stored. Times are Unix seconds from the Redis server's clock."""

    id: str
    status: JobStatus
    queue: str
    created_at: float
    spec: dict[str, Any]
    epoch: int = 0
    epochs: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    worker: dict[str, Any] | None = None
    deliveries: int = 0
    error: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    cancel_requested: bool = False
    plots: tuple[str, ...] = field(default=())
    owner: str = ANONYMOUS  # whose API key made it (never shown: clients see only their own)
    # Which dispatch of the job its messages must belong to (0: the first send; a reaper's
    # re-queue starts the next). Not shown: it is the store's fencing, not the client's.
    dispatch: int = 0

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> JobRecord:
        """From the record hash's fields (as HGETALL returns them)."""
        return cls(
            id=fields[b"id"].decode(),
            status=JobStatus(fields[b"status"].decode()),
            queue=fields[b"queue"].decode(),
            created_at=float(fields[b"created_at"]),
            spec=_json(fields, b"spec") or {},
            epoch=int(fields.get(b"epoch", 0)),
            epochs=int(fields.get(b"epochs", 0)),
            started_at=_time(fields, b"started_at"),
            finished_at=_time(fields, b"finished_at"),
            worker=_json(fields, b"worker"),
            deliveries=int(fields.get(b"deliveries", 0)),
            error=_json(fields, b"error"),
            summary=_json(fields, b"summary"),
            cancel_requested=fields.get(b"cancel_requested") == b"1",
            plots=tuple(_json(fields, b"plots") or ()),
            owner=_text(fields, b"owner") or ANONYMOUS,
            dispatch=int(fields.get(b"dispatch", 0)),
        )

    @property
    def duration(self) -> float | None:
        """Seconds from (the last) start to finish, once finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def to_public(self) -> dict[str, Any]:
        """The record as the HTTP API shows it."""
        return {
            "id": self.id,
            "status": self.status.value,
            "queue": self.queue,
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
            "progress": {"epoch": self.epoch, "epochs": self.epochs},
            "cancel_requested": self.cancel_requested,
            "deliveries": self.deliveries,
            "worker": self.worker,
            "error": self.error,
            "summary": self.summary,
            "plots": list(self.plots),
            "spec": self.spec,
        }
