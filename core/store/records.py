"""The job and study records as the store keeps them, and as clients see them.

A record lives in a Redis hash (`core.store.keys`); `from_fields` reads one from
the hash's fields (as HGETALL returns them) with one set of field parsers, and
`to_public` is what the HTTP API shows. Times are Unix seconds from the Redis
server's clock.

Example:
    >>> record = JobRecord.from_fields(fields_of(client.hgetall(keys.job(job_id).record)))
    >>> record.to_public()["status"]
    'queued'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from core.access.api_keys import ANONYMOUS
from core.experiment.jobs import JobStatus


def dumps_compact(value: Any) -> str:
    """Strict, compact JSON for a record field."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def fields_of(reply: Mapping[bytes, bytes] | Sequence[bytes]) -> Mapping[bytes, bytes]:
    """A hash reply as a mapping: redis-py parses one into a dict, a raw RESP2 reply is flat."""
    if isinstance(reply, Mapping):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _text(fields: Mapping[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    return None if value is None else value.decode()


def _json(fields: Mapping[bytes, bytes], name: bytes) -> Any:
    value = fields.get(name)
    # orjson: reading records is the API's hottest path, and it parses 3-4x faster.
    return None if value is None else orjson.loads(value)


def number(value: bytes | None) -> float | None:
    """A stored time or number; None when absent or empty."""
    return float(value) if value else None


def _time(fields: Mapping[bytes, bytes], name: bytes) -> float | None:
    return number(fields.get(name))


def iso_time(seconds: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, e.g. 2025-01-02T03:04:05.678Z."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        """Its fields, by name."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a job failed: an exception type name and a message for people."""

    type: str
    message: str

    MAX_MESSAGE = 1000

    def to_json_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message[: self.MAX_MESSAGE]}


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job, as stored."""

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
    remedy_studies: tuple[str, ...] = ()  # studies that prove its prescriptions, oldest first

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
            remedy_studies=tuple(_json(fields, b"remedy_studies") or ()),
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
            "remedy_studies": list(self.remedy_studies),
        }


def job_record(reply: Mapping[bytes, bytes] | Sequence[bytes]) -> JobRecord | None:
    """The record in an HGETALL reply; None for an empty one (no such job)."""
    fields = fields_of(reply)
    return JobRecord.from_fields(fields) if fields else None


def job_records(replies: Iterable[Mapping[bytes, bytes] | Sequence[bytes]]) -> list[JobRecord]:
    """The records in HGETALL replies, in order, leaving out the jobs gone."""
    return [record for record in map(job_record, replies) if record is not None]


def stored_status(value: bytes | None) -> JobStatus | None:
    """A record's `status` field; None when there is no record."""
    return None if value is None else JobStatus(value.decode())


@dataclass(frozen=True, slots=True)
class ChildState:
    """One child as its study shows it; `status` is "missing" when its record is gone."""

    id: str
    status: str
    epoch: int = 0
    epochs: int = 0

    def to_json_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "epoch": self.epoch, "epochs": self.epochs}


def _progress(children: Sequence[ChildState]) -> dict[str, int]:
    counts = {status: 0 for status in (*(s.value for s in JobStatus), "missing")}
    for child in children:
        counts[child.status] += 1
    return {
        "children": len(children),
        **counts,
        "finished": len(children) - counts["queued"] - counts["running"],
        "epoch": sum(child.epoch for child in children),
        "epochs": sum(child.epochs for child in children),
    }


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """A study as stored, with its children's states (read live until it is sealed)."""

    id: str
    status: JobStatus
    created_at: float
    request: dict[str, Any]
    configs: list[dict[str, Any]]
    children: tuple[ChildState, ...]
    seeds: int
    owner: str = ANONYMOUS  # whose API key made it (never shown)
    plots: tuple[str, ...] = ()
    cancel_requested: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    summary: dict[str, Any] | None = None
    remedy_studies: tuple[str, ...] = ()  # studies that prove a configuration's prescriptions

    @classmethod
    def from_fields(
        cls, fields: Mapping[bytes, bytes], live: Sequence[ChildState] | None = None
    ) -> StudyRecord:
        """From the record hash; `live` children states replace the stored ones."""
        ids = _json(fields, b"children") or []
        stored = _json(fields, b"child_states")
        if live is not None:
            children = tuple(live)
        elif stored is not None:
            children = tuple(ChildState(**state) for state in stored)
        else:
            children = tuple(ChildState(child_id, "queued") for child_id in ids)
        return cls(
            id=fields[b"id"].decode(),
            status=JobStatus(fields[b"status"].decode()),
            created_at=float(fields[b"created_at"]),
            request=_json(fields, b"request") or {},
            configs=_json(fields, b"configs") or [],
            children=children,
            seeds=int(fields.get(b"seeds", 1)),
            owner=_text(fields, b"owner") or ANONYMOUS,
            plots=tuple(_json(fields, b"plots") or ()),
            cancel_requested=fields.get(b"cancel_requested") == b"1",
            started_at=_time(fields, b"started_at"),
            finished_at=_time(fields, b"finished_at"),
            summary=_json(fields, b"summary"),
            remedy_studies=tuple(_json(fields, b"remedy_studies") or ()),
        )

    @property
    def child_ids(self) -> list[str]:
        return [child.id for child in self.children]

    @property
    def complete(self) -> bool:
        """True once every child has finished (the study itself may not be sealed yet)."""
        return all(child.status not in ("queued", "running") for child in self.children)

    @property
    def progress(self) -> dict[str, int]:
        return _progress(self.children)

    def to_public(self) -> dict[str, Any]:
        """The study as the HTTP API shows it."""
        configs = [
            {
                **config,
                "children": [
                    child.to_json_dict()
                    for child in self.children[
                        config["index"] * self.seeds : (config["index"] + 1) * self.seeds
                    ]
                ],
            }
            for config in self.configs
        ]
        return {
            "id": self.id,
            "status": self.status.value,
            "name": self.request.get("name"),
            "preset": self.request.get("preset"),
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
            "progress": self.progress,
            "cancel_requested": self.cancel_requested,
            "axes": self.request.get("axes", {}),
            "seeds": self.seeds,
            "seed": self.request.get("seed"),
            "configs": configs,
            "summary": self.summary,
            "plots": list(self.plots) if self.status.finished else [],
            "base": self.request.get("base", {}),
            "remedies": self.request.get("remedies"),
            "remedy_studies": list(self.remedy_studies),
        }
