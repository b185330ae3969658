"""The Redis job store: one record per job, its results beside it, atomic transitions.

Two front ends share one implementation. `JobStore` (redis-py, blocking) serves
the worker and tests; `AsyncJobStore` (asyncio, one auto-pipelined connection)
serves the API. Both expose the same operations with the same signatures (async
ones are awaited), generated from `JobPlans`: pure functions that turn a call
into one Redis round trip (a Lua script, or a pipeline of commands) plus a
function that reads the reply. Every state change is one Lua script
(core.store.scripts), so it is atomic: a cancel racing a finish leaves exactly
one of them applied. Times come from the Redis server's clock, so workers on
several machines agree.

Operations (`store.<name>`; job_id positional, everything else keyword-only):

    create(*, spec, queue, idempotency_key=None, fingerprint="", owner=ANONYMOUS,
           max_active=0) -> Created
        A queued job of `owner` (record + indexes + "queued" event), its first dispatch
        in the outbox: send its task, then `confirm_dispatch(id, dispatch=0)`; a reaper
        sends what stays unconfirmed. With an Idempotency-Key (scoped to the owner) a
        repeat returns the first job (Created.new False); raises IdempotencyKeyReused
        when the key comes back with another request fingerprint, and TooManyActiveJobs
        when the owner already has `max_active` jobs queued or running (0: no limit).
    get(job_id) -> JobRecord | None
    owner_of(job_id) -> str | None          The job's owner; None for an unknown job.
    mark_running(job_id, *, worker: WorkerInfo, max_deliveries: int, dispatch=None,
                 task=None) -> JobRecord | None
        Counts a delivery. None when the job must not run: unknown, finished, cancel
        requested (now cancelled), delivered more than max_deliveries times, those
        cut short by lost connections to Redis aside (now failed with error type
        TooManyDeliveries), or the message is of an older
        dispatch than the job's (a reaper re-queued it since). The record's
        `deliveries` is the delivery's fencing token: set_progress, mark_succeeded,
        mark_failed and mark_cancelled take it as `delivery=` and refuse to write for a
        delivery that is no longer the job's latest.
    note_interrupted(job_id, *, hostname, note) -> bool
        Worker `hostname` lost its connection to Redis and Celery stopped its run of the
        job: that delivery no longer counts against max_deliveries (told once per note).
    set_worker(job_id, *, worker: WorkerInfo, delivery) -> bool
        The running delivery's worker in full (False, unchanged, for a stale delivery).
    set_progress(job_id, *, epoch, epochs, metrics=None) -> bool
        Records progress and emits a progress event. False when training should stop:
        the job is no longer running (cancelled, deleted, finished) or a cancel was asked.
    is_cancel_requested(job_id) -> bool      True also when the job is gone or finished.
    mark_succeeded(job_id, *, summary: Summary, result_json: str, plots: {name: png},
                   arrays: bytes | None = None) -> bool
    mark_failed(job_id, *, error_type: str, message: str) -> bool
    mark_cancelled(job_id) -> bool
        Each finishing call returns False (and changes nothing) unless the job was still
        running (or, for failed/cancelled, queued): a stale delivery is a no-op.
    request_cancel(job_id) -> CancelOutcome | None
        Queued: cancelled now. Running: cancel_requested set, the worker stops after the
        epoch. Finished: unchanged. None for an unknown job.
    delete(job_id) -> bool
    list_jobs(*, status=None, limit=50, cursor=None, owner=None) -> JobPage
        Newest first; with `owner`, only that owner's jobs (from its own indexes).
    admit(owner, *, jobs=1, per_minute, max_active, window=60) -> Refusal | None
        Counts a submission of `owner` adding `jobs` jobs, or says which limit refuses it.
    get_result(job_id) / get_arrays(job_id) -> Stored
    get_plot(job_id, *, field, body=True) -> StoredPlot
    put_plot(job_id, *, field, png) -> str | None                   (caches a rendered size)
    read_events(job_id, *, after="0", block_ms=None, count=100) -> list[JobEvent]
    record_heartbeat(*, queue, hostname) -> None
    forget_worker(*, queue, hostname) -> None
    live_workers(*, queue, within_seconds=None) -> list[str]
        Workers that beat within `within_seconds` (default: the deployment's
        worker_silent_seconds, past which a reaper counts a worker as lost).
    record_worker_jobs(*, hostname, jobs: [(job_id, dispatch)]) -> None
        Each heartbeat: the messages the worker holds, started or not.
    running_jobs(*, limit=1000) -> list[JobRecord]
    requeue_lost(job_id, *, queue, hostname, delivery, silent_seconds, max_deliveries)
        -> Requeue       A reaper's atomic claim on a job whose worker is lost.
    lost_workers(*, queue, silent_seconds) -> [(hostname, [(job_id, dispatch)])]
    requeue_held(job_id, *, queue, hostname, dispatch, silent_seconds) -> Requeue
        The claim on a queued job whose message a lost worker held, never started.
    forget_report(*, queue, hostname, silent_seconds) -> None
    unsent_dispatches(*, older_than=0, limit=100) -> [(job_id, dispatch)]
        The outbox: dispatches (first sends and re-queues) not confirmed sent.
    redispatch(job_id, *, dispatch, unconfirmed_seconds, reason=None) -> Requeue
    confirm_dispatch(job_id, *, dispatch) -> None
    prune_expired(*, limit=1000) -> int
    metrics(*, queues) -> MetricsSnapshot
    ping() -> bool

Example:
    >>> store = JobStore.from_settings(get_settings())
    >>> record = store.mark_running(job_id, worker=WorkerInfo.from_device_info(host, info),
    ...                             max_deliveries=3)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import redis
import redis.asyncio
import redis.exceptions

from core.access.api_keys import ANONYMOUS
from core.experiment.jobs import (
    ErrorInfo,
    JobRecord,
    JobStatus,
    Summary,
    WorkerInfo,
    dumps_compact,
    is_job_id,
    new_job_id,
    training_task,
)
from core.experiment.spec import ExperimentSpec, Limits
from core.settings import Settings
from core.store.keys import Keys, owned, plot_etag_field
from core.store.multiplex import MultiplexedRedis
from core.store.scripts import (
    ADMIT,
    CREATE,
    DELETE,
    DURATION_BUCKETS,
    FORGET_REPORT,
    HEARTBEAT,
    LIVE_WORKERS,
    LOST_WORKERS,
    MARK_RUNNING,
    MARK_STOPPED,
    MARK_SUCCEEDED,
    NOTE_INTERRUPTED,
    PRUNE_OWNED,
    PUT_PLOT,
    RECORD_WORKER_JOBS,
    REDISPATCH,
    REQUEST_CANCEL,
    REQUEUE_HELD,
    REQUEUE_LOST,
    SCRIPTS,
    SET_PROGRESS,
    SET_WORKER,
    UNSENT,
    LuaScript,
)

T = TypeVar("T")
P = ParamSpec("P")

# A stream entry per epoch plus a few state changes: the cap keeps every event of the
# longest allowed run, so a client resuming with Last-Event-ID never misses one.
EVENTS_MAXLEN = Limits.EPOCHS + 100
# A worker that beat within this many seconds is live, unless the settings say otherwise
# (`Settings.worker_silent_seconds`: the silence after which a reaper counts it lost).
LIVE_WORKER_SECONDS = 30.0
# Heartbeats older than this are dropped from the set.
HEARTBEAT_KEEP = 24 * 3600
# What Retry-After says to an owner at its limit of active jobs: about one short job.
ACTIVE_LIMIT_RETRY_AFTER = 10.0
# A Redis that stops answering (paused, or a network dropping packets) must not hold a
# worker's heartbeat or job, nor an API request, forever; blocking reads wait at most
# a few seconds (XREAD BLOCK), well within this.
SOCKET_CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 30.0
# PNGs (sizes x plots, the default ones included) cached per job: bounds Redis memory
# whatever sizes clients ask for.
MAX_CACHED_PLOTS = 64

# ------------------------------------------------------------------- what returns


class IdempotencyKeyReused(Exception):  # noqa: N818 - reads as the event it reports
    """An Idempotency-Key came back with a different request than the one it first made."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"the Idempotency-Key was first used for job {job_id} with another body")
        self.job_id = job_id


class InvalidCursor(ValueError):  # noqa: N818
    """A list cursor this store did not hand out."""


class TooManyActiveJobs(Exception):  # noqa: N818 - reads as the event it reports
    """The owner already has as many jobs queued or running as it may."""

    def __init__(self, active: int) -> None:
        super().__init__(f"{active} jobs already queued or running")
        self.active = active


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `admit` refused a submission: the limit (a Settings field name) and the wait."""

    limit: str  # "max_active_jobs" or "submissions_per_minute"
    retry_after: float  # seconds; a hint for max_active_jobs, exact for the rate
    active: int | None = None  # the owner's queued and running jobs, for max_active_jobs


@dataclass(frozen=True, slots=True)
class Requeue:
    """What a reaper's claim on a job did: `action` is requeued, failed, cancelled or skip.

    For "requeued": the new `dispatch` number, the `task` to send (name and kwargs,
    as the record keeps it; None for a record from before it kept one), its `queue`,
    and the `reason` it is dispatched anew.
    """

    job_id: str
    action: str
    dispatch: int = 0
    task: dict[str, Any] | None = None
    queue: str = ""
    reason: str = ""


def _requeue(job_id: str, reply: list[Any]) -> Requeue:
    action = reply[0].decode()
    if action == "requeued":
        _, dispatch, task, queue, reason = reply
        return Requeue(
            job_id,
            action,
            dispatch=int(dispatch),
            task=json.loads(task) if task else None,
            queue=queue.decode(),
            reason=reason.decode(),
        )
    reason = reply[1].decode() if len(reply) > 1 else ""
    return Requeue(job_id, action, reason=reason)


@dataclass(frozen=True, slots=True)
class Created:
    """The job `create` returns; `new` is False when an Idempotency-Key replayed it."""

    record: JobRecord
    new: bool


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What a cancel request found (`before`) and the record after it."""

    before: JobStatus
    record: JobRecord


@dataclass(frozen=True, slots=True)
class JobPage:
    """A page of jobs, newest first; `next_cursor` None on the last page."""

    items: list[JobRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored blob (result, arrays) and the status of its job (None: unknown job)."""

    status: JobStatus | None
    content: bytes | None


@dataclass(frozen=True, slots=True)
class StoredPlot:
    """A stored PNG and its ETag; on a miss, the job's status and default plot names."""

    etag: str | None = None
    png: bytes | None = None
    status: JobStatus | None = None
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's event stream: `progress`, `state` or `cancel_requested`."""

    id: str
    type: str
    data: str  # JSON


@dataclass(frozen=True, slots=True)
class DurationStats:
    """A duration histogram: cumulative counts per upper bound (`+Inf` last), sum, count."""

    buckets: list[tuple[str, int]]
    total: float
    count: int


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Counts for /metrics, read in one round trip."""

    jobs_by_status: dict[JobStatus, int]
    queue_depths: dict[str, int]
    durations: dict[JobStatus, DurationStats] = field(default_factory=dict)


# ----------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    """One Redis round trip and how to read its reply.

    Either a Lua `script` called with `keys` and `args`, or `commands` sent as one
    pipeline (MULTI/EXEC when `atomic`; the reply is then a list, one entry per
    command). `decode` turns the reply into the result, or into the next Plan when
    an operation needs another round trip.
    """

    decode: Callable[[Any], T | Plan[T]]
    script: LuaScript | None = None
    keys: Sequence[str] = ()
    args: Sequence[str | bytes | int | float] = ()
    commands: Sequence[Sequence[str | bytes | int | float]] = ()
    atomic: bool = False
    blocking: bool = False  # holds its connection while Redis waits (XREAD BLOCK)


def _after(first: Plan[Any], outcome: T | Plan[T]) -> Plan[T]:
    """`first` run for its effect, then `outcome`: a value, or the next plan."""
    return dataclasses.replace(first, decode=lambda _: outcome)


def _mapping(reply: Mapping[bytes, bytes] | Sequence[bytes]) -> Mapping[bytes, bytes]:
    """A hash reply as a mapping: redis-py parses one into a dict, a raw RESP2 reply is flat."""
    if isinstance(reply, Mapping):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _record(fields: Mapping[bytes, bytes] | Sequence[bytes]) -> JobRecord | None:
    mapping = _mapping(fields)
    return JobRecord.from_fields(mapping) if mapping else None


def _status(value: bytes | None) -> JobStatus | None:
    return None if value is None else JobStatus(value.decode())


def png_etag(png: bytes) -> str:
    """The strong ETag of a PNG: a hash of its bytes, quoted."""
    return '"' + hashlib.blake2b(png, digest_size=16).hexdigest() + '"'


def encode_cursor(job_id: str) -> str:
    """The opaque cursor that continues a listing after `job_id`."""
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The job id a cursor continues after; raises InvalidCursor."""
    try:
        job_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("cursor: not one this API handed out") from error
    if not is_job_id(job_id):
        raise InvalidCursor("cursor: not one this API handed out")
    return job_id


def _optional(number: int | None) -> str | int:
    """A number for a script argument that may be absent ('': not given)."""
    return "" if number is None else number


def _progress_event(epoch: int, epochs: int, metrics: Mapping[str, float | None] | None) -> str:
    event: dict[str, Any] = {"epoch": epoch, "epochs": epochs}
    for name, value in (metrics or {}).items():
        event[name] = None if value is None or not math.isfinite(value) else float(value)
    return dumps_compact(event)


class JobPlans:
    """Every store operation as a pure function from arguments to a `Plan`."""

    def __init__(
        self,
        keys: Keys,
        *,
        job_ttl_seconds: int,
        idempotency_ttl_seconds: int,
        live_worker_seconds: float = LIVE_WORKER_SECONDS,
    ) -> None:
        self.keys = keys
        self.job_ttl_seconds = job_ttl_seconds
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        self.live_worker_seconds = live_worker_seconds
        self._status_keys = tuple(keys.jobs_with_status(status) for status in JobStatus)

    def _job_keys(self, job_id: str) -> list[str]:
        return [
            *self.keys.job(job_id).all(),
            self.keys.jobs,
            self.keys.expiry,
            self.keys.durations,
            *self._status_keys,
            self.keys.job_owners,
        ]

    def _job_args(self, job_id: str, *extra: str | bytes | int) -> list[str | bytes | int]:
        return [job_id, self.job_ttl_seconds, EVENTS_MAXLEN, *extra]

    # ---------------------------------------------------------------- lifecycle

    def create(
        self,
        *,
        spec: ExperimentSpec,
        queue: str,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        owner: str = ANONYMOUS,
        max_active: int = 0,
    ) -> Plan[Created]:
        """A queued job of `owner` for `spec` on `queue`, or the one an Idempotency-Key made.

        `fingerprint` identifies the request behind an Idempotency-Key: the same key
        with another fingerprint raises IdempotencyKeyReused. With `max_active` > 0,
        raises TooManyActiveJobs when the owner already has that many queued or running.
        """
        request = _CreateRequest(spec, queue, idempotency_key, fingerprint, owner, max_active)
        return self._create(request, stale="")

    def _create(self, request: _CreateRequest, *, stale: str) -> Plan[Created]:
        """Create, or replay; `stale` is the idempotency value of a job found gone."""
        new_id = new_job_id()
        keys = [*self._job_keys(new_id), self.keys.outbox]
        idempotency = ""
        if request.idempotency_key is not None:
            keys.append(self.keys.idempotency(request.idempotency_key, request.owner))
            idempotency = f"{new_id} {request.fingerprint}"
        args = self._job_args(
            new_id,
            request.queue,
            dumps_compact(request.spec.to_json_dict()),
            request.spec.training.epochs,
            idempotency,
            self.idempotency_ttl_seconds,
            stale,
            request.owner,
            request.max_active,
            dumps_compact(training_task(new_id)),
        )

        def decode(reply: list[Any]) -> Created | Plan[Created]:
            if reply[0] == b"created":
                record = _record(reply[1])
                assert record is not None
                return Created(record, new=True)
            if reply[0] == b"limited":
                raise TooManyActiveJobs(int(reply[1]))
            previous = reply[1].decode()
            previous_id, _, previous_fingerprint = previous.partition(" ")
            if previous_fingerprint != request.fingerprint:
                raise IdempotencyKeyReused(previous_id)
            return self._replayed(previous, request)

        return Plan(decode, script=CREATE, keys=keys, args=args)

    def _replayed(self, value: str, request: _CreateRequest) -> Plan[Created]:
        """The job the idempotency value `value` ("<job id> <fingerprint>") names."""
        job_id = value.partition(" ")[0]

        def decode(reply: list[Any]) -> Created | Plan[Created]:
            record = _record(reply[0])
            if record is not None:
                return Created(record, new=False)
            # The first job was deleted or has expired: the key now names a new one,
            # unless a concurrent replay got there first (then that one is replayed).
            return self._create(request, stale=value)

        return Plan(decode, commands=[("HGETALL", self.keys.job(job_id).record)])

    def owner_of(self, job_id: str) -> Plan[str | None]:
        """The owner of `job_id`, or None for an unknown (or expired) job."""
        return owner_of_record(self.keys.job(job_id).record)

    def admit(
        self,
        owner: str,
        *,
        jobs: int = 1,
        per_minute: int,
        max_active: int,
        window: float = 60.0,
    ) -> Plan[Refusal | None]:
        """Count a submission of `owner` that adds `jobs` jobs; a Refusal when a limit says no.

        Refused when the owner's queued and running jobs plus `jobs` would pass
        `max_active`, or when it already made `per_minute` submissions in the last
        `window` seconds (a sliding window; a refused one is not counted).
        """
        keys = [
            self.keys.submissions(owner),
            owned(self.keys.jobs_with_status(JobStatus.QUEUED), owner),
            owned(self.keys.jobs_with_status(JobStatus.RUNNING), owner),
        ]
        args: list[str | int | float] = [new_job_id(), per_minute, window, max_active, jobs]

        def decode(reply: list[Any]) -> Refusal | None:
            if reply[0] == b"active":
                return Refusal("max_active_jobs", ACTIVE_LIMIT_RETRY_AFTER, int(reply[1]))
            if reply[0] == b"rate":
                return Refusal("submissions_per_minute", max(float(reply[1]), 0.001))
            return None

        return Plan(decode, script=ADMIT, keys=keys, args=args)

    def get(self, job_id: str) -> Plan[JobRecord | None]:
        """The record of `job_id`, or None."""
        return Plan(
            lambda reply: _record(reply[0]), commands=[("HGETALL", self.keys.job(job_id).record)]
        )

    def mark_running(
        self,
        job_id: str,
        *,
        worker: WorkerInfo,
        max_deliveries: int,
        dispatch: int | None = None,
        task: Mapping[str, Any] | None = None,
    ) -> Plan[JobRecord | None]:
        """Start (or restart, on redelivery) `job_id`; None when it must not run.

        `dispatch` is the one the Celery message belongs to: a message of an earlier
        dispatch (one a reaper has since re-queued) is refused. `task` (name and
        kwargs, JSON) is kept so that a reaper can send the job again the same way.
        The record's `deliveries` is this delivery's fencing token for the writes below.
        """
        args = self._job_args(
            job_id,
            dumps_compact(worker.to_json_dict()),
            max_deliveries,
            _optional(dispatch),
            "" if task is None else dumps_compact(dict(task)),
        )

        def decode(reply: list[Any]) -> JobRecord | None:
            return _record(reply[1]) if reply[0] == b"running" else None

        return Plan(decode, script=MARK_RUNNING, keys=self._job_keys(job_id), args=args)

    def note_interrupted(self, job_id: str, *, hostname: str, note: str) -> Plan[bool]:
        """Worker `hostname` lost its connection to Redis and Celery stopped its run of
        `job_id` (to deliver it again): that delivery does not count against
        max_deliveries, as it says nothing of the job. `note` identifies the word, so that
        a retried call counts once; False when nothing was counted.
        """
        args = self._job_args(job_id, hostname, note)
        return Plan(
            lambda reply: reply == 1,
            script=NOTE_INTERRUPTED,
            keys=self._job_keys(job_id),
            args=args,
        )

    def set_worker(self, job_id: str, *, worker: WorkerInfo, delivery: int) -> Plan[bool]:
        """Name in full the worker of delivery `delivery` while it runs the job.

        mark_running comes first, before the worker loads its engine (seconds, on a
        fresh process), so that the job is `running` as soon as a worker holds it; what
        only the engine knows (a GPU's name) is written here once it is loaded.
        """
        args = self._job_args(job_id, dumps_compact(worker.to_json_dict()), delivery)
        return Plan(
            lambda reply: reply == 1, script=SET_WORKER, keys=self._job_keys(job_id), args=args
        )

    def set_progress(
        self,
        job_id: str,
        *,
        epoch: int,
        epochs: int,
        metrics: Mapping[str, float | None] | None = None,
        delivery: int | None = None,
    ) -> Plan[bool]:
        """Record epoch `epoch` of `epochs` done; False when training should stop.

        With `delivery` (the fencing token), False also once the job was delivered again.
        """
        event = _progress_event(epoch, epochs, metrics)
        args = self._job_args(job_id, epoch, epochs, event, _optional(delivery))
        return Plan(
            lambda reply: reply == 1, script=SET_PROGRESS, keys=self._job_keys(job_id), args=args
        )

    def is_cancel_requested(self, job_id: str) -> Plan[bool]:
        """True when the job should stop: a cancel was asked, or it is gone or finished."""
        record = self.keys.job(job_id).record

        def decode(reply: list[Any]) -> bool:
            status, cancel = reply[0]
            return status != JobStatus.RUNNING.encode() or cancel == b"1"

        return Plan(decode, commands=[("HMGET", record, "status", "cancel_requested")])

    def mark_succeeded(
        self,
        job_id: str,
        *,
        summary: Summary,
        result_json: str,
        plots: Mapping[str, bytes],
        arrays: bytes | None = None,
        delivery: int | None = None,
    ) -> Plan[bool]:
        """Store the result, arrays and default-size plots, and finish the job as succeeded.

        False (nothing stored) unless the job is running, as delivery `delivery` if given.
        """
        summary_json = dumps_compact(summary.to_json_dict())
        plot_args: list[str | bytes | int] = []
        for name, png in plots.items():
            plot_args += [name, png, plot_etag_field(name), png_etag(png)]
        args = self._job_args(
            job_id,
            summary_json,
            result_json,
            arrays or b"",
            dumps_compact(list(plots)),
            f'{{"status":"succeeded","summary":{summary_json}}}',
            _optional(delivery),
            *plot_args,
        )
        return Plan(
            lambda reply: reply == 1, script=MARK_SUCCEEDED, keys=self._job_keys(job_id), args=args
        )

    def mark_failed(
        self,
        job_id: str,
        *,
        error_type: str,
        message: str,
        delivery: int | None = None,
        dispatch: int | None = None,
    ) -> Plan[bool]:
        """Finish a queued or running job as failed with an error type and message.

        With `delivery`, only while that delivery runs it; with `dispatch`, only while
        the job belongs to that dispatch (see mark_running).
        """
        error = dumps_compact(ErrorInfo(error_type, message).to_json_dict())
        event = f'{{"status":"failed","error":{error}}}'
        return self._stop(job_id, JobStatus.FAILED, error, event, delivery, dispatch)

    def mark_cancelled(self, job_id: str, *, delivery: int | None = None) -> Plan[bool]:
        """Finish a queued or running job as cancelled (as mark_failed for `delivery`)."""
        event = '{"status":"cancelled"}'
        return self._stop(job_id, JobStatus.CANCELLED, "", event, delivery, None)

    def _stop(
        self,
        job_id: str,
        status: JobStatus,
        error: str,
        event: str,
        delivery: int | None,
        dispatch: int | None,
    ) -> Plan[bool]:
        args = self._job_args(
            job_id, status.value, error, event, _optional(delivery), _optional(dispatch)
        )
        return Plan(
            lambda reply: reply == 1, script=MARK_STOPPED, keys=self._job_keys(job_id), args=args
        )

    def request_cancel(self, job_id: str) -> Plan[CancelOutcome | None]:
        """Cancel a queued job now, or ask a running one to stop after its epoch."""

        def decode(reply: list[Any]) -> CancelOutcome | None:
            if reply[0] == b"missing":
                return None
            record = _record(reply[1])
            assert record is not None
            return CancelOutcome(JobStatus(reply[0].decode()), record)

        args = self._job_args(job_id)
        return Plan(decode, script=REQUEST_CANCEL, keys=self._job_keys(job_id), args=args)

    def delete(self, job_id: str) -> Plan[bool]:
        """Remove the job and everything stored for it; False when it was unknown."""
        args = self._job_args(job_id)
        return Plan(lambda reply: reply == 1, script=DELETE, keys=self._job_keys(job_id), args=args)

    # ------------------------------------------------------------------ listing

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> Plan[JobPage]:
        """Jobs newest first, optionally of one status and owner, `limit` per page from `cursor`.

        Ids sort by creation time and every index member has the same score, so a
        page is a lexicographic range below the cursor's id: stable under inserts.
        A page may hold fewer than `limit` jobs when some expired meanwhile.
        """
        index = self.keys.jobs if status is None else self.keys.jobs_with_status(status)
        if owner is not None:
            index = owned(index, owner)
        upper = "+" if cursor is None else "(" + decode_cursor(cursor)
        command = ("ZREVRANGEBYLEX", index, upper, "-", "LIMIT", 0, limit + 1)
        return Plan(lambda reply: self._page(reply[0], limit), commands=[command])

    def _page(self, members: list[bytes], limit: int) -> JobPage | Plan[JobPage]:
        ids = [member.decode() for member in members[:limit]]
        next_cursor = encode_cursor(ids[-1]) if len(members) > limit else None
        if not ids:
            return JobPage([], None)

        def decode(reply: list[Any]) -> JobPage | Plan[JobPage]:
            records = [_record(fields) for fields in reply]
            page = JobPage([record for record in records if record is not None], next_cursor)
            if len(page.items) == len(ids):
                return page
            # Some entries outlived their records: prune them, then answer.
            return _after(self.prune_expired(), page)

        commands = [("HGETALL", self.keys.job(job_id).record) for job_id in ids]
        return Plan(decode, commands=commands)

    def prune_expired(self, *, limit: int = 1000) -> Plan[int]:
        """Drop up to `limit` expired jobs from the indexes (their owners' too); the count."""
        keys = [self.keys.job_owners, self.keys.expiry, self.keys.jobs, *self._status_keys]
        return Plan(int, script=PRUNE_OWNED, keys=keys, args=[limit])

    # ----------------------------------------------------------- stored content

    def get_result(self, job_id: str) -> Plan[Stored]:
        """result.json of the job, with its status."""
        return self._blob(job_id, self.keys.job(job_id).result)

    def get_arrays(self, job_id: str) -> Plan[Stored]:
        """arrays.npz of the job (when raw capture was asked), with its status."""
        return self._blob(job_id, self.keys.job(job_id).arrays)

    def _blob(self, job_id: str, key: str) -> Plan[Stored]:
        record = self.keys.job(job_id).record
        commands = [("GET", key), ("HGET", record, "status")]
        return Plan(
            lambda reply: Stored(_status(reply[1]), reply[0]), commands=commands, atomic=True
        )

    def get_plot(self, job_id: str, *, field: str, body: bool = True) -> Plan[StoredPlot]:
        """A stored PNG (only its ETag when not `body`); on a miss, the job's status."""
        keys = self.keys.job(job_id)
        fields = [plot_etag_field(field), field] if body else [plot_etag_field(field)]

        def decode(reply: list[Any]) -> StoredPlot | Plan[StoredPlot]:
            etag, *png = reply[0]
            if etag is not None:
                return StoredPlot(etag=etag.decode(), png=png[0] if png else None)
            return Plan(miss, commands=[("HMGET", keys.record, "status", "plots")])

        def miss(reply: list[Any]) -> StoredPlot:
            status, names = reply[0]
            return StoredPlot(
                status=_status(status), names=tuple(json.loads(names)) if names else ()
            )

        return Plan(decode, commands=[("HMGET", keys.plots, *fields)])

    def put_plot(self, job_id: str, *, field: str, png: bytes) -> Plan[str | None]:
        """Cache a rendered PNG beside a finished job; its ETag, or None if not cached."""
        keys = self.keys.job(job_id)
        etag = png_etag(png)
        args: list[str | bytes | int] = [
            field,
            png,
            plot_etag_field(field),
            etag,
            2 * MAX_CACHED_PLOTS,
        ]
        return Plan(
            lambda reply: etag if reply == 1 else None,
            script=PUT_PLOT,
            keys=[keys.record, keys.plots],
            args=args,
        )

    def read_events(
        self, job_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> Plan[list[JobEvent]]:
        """Events after stream id `after`, waiting up to `block_ms` for the first one."""
        command: list[str | int] = ["XREAD", "COUNT", count]
        if block_ms is not None:
            command += ["BLOCK", block_ms]
        command += ["STREAMS", self.keys.job(job_id).events, after]

        def decode(reply: list[Any]) -> list[JobEvent]:
            if not reply[0]:
                return []
            _, entries = reply[0][0]
            events = []
            for entry_id, data in entries:
                fields = _mapping(data)
                events.append(
                    JobEvent(entry_id.decode(), fields[b"type"].decode(), fields[b"data"].decode())
                )
            return events

        return Plan(decode, commands=[command], blocking=block_ms is not None)

    # ------------------------------------------------------------------ workers

    def record_heartbeat(self, *, queue: str, hostname: str) -> Plan[None]:
        """Note that `hostname` is alive and consuming `queue`."""
        keys = [self.keys.worker_heartbeats(queue)]
        return Plan(lambda _: None, script=HEARTBEAT, keys=keys, args=[hostname, HEARTBEAT_KEEP])

    def forget_worker(self, *, queue: str, hostname: str) -> Plan[None]:
        """Remove `hostname` from `queue`'s live workers (on a clean shutdown)."""
        command = ("ZREM", self.keys.worker_heartbeats(queue), hostname)
        return Plan(lambda _: None, commands=[command])

    def live_workers(self, *, queue: str, within_seconds: float | None = None) -> Plan[list[str]]:
        """Hostnames that beat on `queue` within the last `within_seconds` (default: the
        silence after which a reaper counts a worker as lost, so /readyz and the reapers
        agree on which workers are alive)."""
        seconds = self.live_worker_seconds if within_seconds is None else within_seconds
        return Plan(
            lambda reply: sorted(name.decode() for name in reply),
            script=LIVE_WORKERS,
            keys=[self.keys.worker_heartbeats(queue)],
            args=[f"{seconds:g}"],
        )

    # -------------------------------------------------------------- worker loss

    def record_worker_jobs(self, *, hostname: str, jobs: Sequence[tuple[str, int]]) -> Plan[None]:
        """Note the (job id, dispatch) of the messages worker `hostname` holds now (each
        heartbeat), started or not: the reaper's evidence."""
        keys = [self.keys.worker_jobs(hostname)]
        held = " ".join(f"{job_id}:{dispatch}" for job_id, dispatch in jobs)
        args: list[str | int] = [held, HEARTBEAT_KEEP]
        return Plan(lambda _: None, script=RECORD_WORKER_JOBS, keys=keys, args=args)

    def lost_workers(
        self, *, queue: str, silent_seconds: float
    ) -> Plan[list[tuple[str, list[tuple[str, int]]]]]:
        """(hostname, [(job id, dispatch)]) of the workers of `queue` silent for
        `silent_seconds` whose last report named the messages they held."""
        prefix, suffix = self.keys.worker_jobs_around()

        def decode(reply: list[bytes]) -> list[tuple[str, list[tuple[str, int]]]]:
            lost = []
            for host, report in zip(reply[::2], reply[1::2], strict=True):
                entries = [word.partition(":") for word in report.decode().split()[1:]]
                held = [(job_id, int(dispatch or 0)) for job_id, _, dispatch in entries]
                lost.append((host.decode(), held))
            return lost

        args = [f"{silent_seconds:g}", prefix, suffix]
        keys = [self.keys.worker_heartbeats(queue)]
        return Plan(decode, script=LOST_WORKERS, keys=keys, args=args)

    def requeue_held(
        self, job_id: str, *, queue: str, hostname: str, dispatch: int, silent_seconds: float
    ) -> Plan[Requeue]:
        """Dispatch anew a queued job whose message (of `dispatch`) worker `hostname` held
        when it went silent for `silent_seconds`: it died before marking the job running.

        Atomic, as requeue_lost; "skip" when the job moved on or the worker is back.
        """
        keys = [
            *self._job_keys(job_id),
            self.keys.worker_heartbeats(queue),
            self.keys.worker_jobs(hostname),
            self.keys.outbox,
        ]
        args = self._job_args(job_id, hostname, dispatch, f"{silent_seconds:g}")
        return Plan(partial(_requeue, job_id), script=REQUEUE_HELD, keys=keys, args=args)

    def forget_report(self, *, queue: str, hostname: str, silent_seconds: float) -> Plan[None]:
        """Drop the last report of `hostname` if it is still silent: its jobs were seen to."""
        keys = [self.keys.worker_heartbeats(queue), self.keys.worker_jobs(hostname)]
        args = [hostname, f"{silent_seconds:g}"]
        return Plan(lambda _: None, script=FORGET_REPORT, keys=keys, args=args)

    def running_jobs(self, *, limit: int = 1000) -> Plan[list[JobRecord]]:
        """Up to `limit` running jobs, oldest id first: what a reaper looks over."""
        index = self.keys.jobs_with_status(JobStatus.RUNNING)

        def records(reply: list[Any]) -> list[JobRecord] | Plan[list[JobRecord]]:
            ids = [member.decode() for member in reply[0]]
            if not ids:
                return []
            commands = [("HGETALL", self.keys.job(job_id).record) for job_id in ids]
            return Plan(
                lambda replies: [r for r in map(_record, replies) if r is not None],
                commands=commands,
            )

        return Plan(records, commands=[("ZRANGE", index, 0, limit - 1)])

    def requeue_lost(
        self,
        job_id: str,
        *,
        queue: str,
        hostname: str,
        delivery: int,
        silent_seconds: float,
        max_deliveries: int,
    ) -> Plan[Requeue]:
        """Re-queue (or fail, past `max_deliveries`) delivery `delivery` of a running job
        whose worker `hostname` is lost: silent for `silent_seconds`, or beating without it.

        Atomic, so of several reapers one acts; the others (and a job that is fine) get
        action "skip". After "requeued", send the task, then `confirm_dispatch`.
        """
        keys = [
            *self._job_keys(job_id),
            self.keys.worker_heartbeats(queue),
            self.keys.worker_jobs(hostname),
            self.keys.outbox,
        ]
        args = self._job_args(job_id, hostname, delivery, f"{silent_seconds:g}", max_deliveries)
        return Plan(partial(_requeue, job_id), script=REQUEUE_LOST, keys=keys, args=args)

    def unsent_dispatches(
        self, *, older_than: float = 0.0, limit: int = 100
    ) -> Plan[list[tuple[str, int]]]:
        """(job id, dispatch) of the outbox's entries unconfirmed for over `older_than`
        seconds, oldest first: first sends and re-queues whose message was not confirmed."""

        def decode(reply: list[bytes]) -> list[tuple[str, int]]:
            entries = [member.decode().partition(" ") for member in reply]
            return [(job_id, int(dispatch)) for job_id, _, dispatch in entries]

        return Plan(decode, script=UNSENT, keys=[self.keys.outbox], args=[f"{older_than:g}", limit])

    def redispatch(
        self,
        job_id: str,
        *,
        dispatch: int,
        unconfirmed_seconds: float,
        reason: str | None = None,
    ) -> Plan[Requeue]:
        """Dispatch `job_id` anew when its dispatch `dispatch` is still queued and in the
        outbox, unconfirmed for `unconfirmed_seconds`; `reason` is what the event tells."""
        keys = [*self._job_keys(job_id), self.keys.outbox]
        args = self._job_args(
            job_id, f"{job_id} {dispatch}", f"{unconfirmed_seconds:g}", reason or ""
        )
        return Plan(partial(_requeue, job_id), script=REDISPATCH, keys=keys, args=args)

    def confirm_dispatch(self, job_id: str, *, dispatch: int) -> Plan[None]:
        """The message of `job_id`'s dispatch `dispatch` was sent: it leaves the outbox."""
        command = ("ZREM", self.keys.outbox, f"{job_id} {dispatch}")
        return Plan(lambda _: None, commands=[command])

    # ------------------------------------------------------------------ metrics

    def metrics(self, *, queues: Sequence[str]) -> Plan[MetricsSnapshot]:
        """Jobs per status, Celery queue depths and job durations (after a prune)."""
        commands: list[tuple[str, ...]] = [("ZCARD", key) for key in self._status_keys]
        commands += [("LLEN", self.keys.celery_queue(queue)) for queue in queues]
        commands.append(("HGETALL", self.keys.durations))

        def decode(reply: list[Any]) -> MetricsSnapshot:
            counts = dict(zip(JobStatus, reply, strict=False))
            depths = dict(zip(queues, reply[len(JobStatus) :], strict=False))
            return MetricsSnapshot(counts, depths, _durations(_mapping(reply[-1])))

        return _after(self.prune_expired(), Plan(decode, commands=commands, atomic=True))

    def ping(self) -> Plan[bool]:
        """True when Redis answers."""
        return Plan(lambda reply: bool(reply[0]), commands=[("PING",)])


@dataclass(frozen=True, slots=True)
class _CreateRequest:
    """What `create` was asked, kept for a replay that has to create after all."""

    spec: ExperimentSpec
    queue: str
    idempotency_key: str | None
    fingerprint: str
    owner: str
    max_active: int


def owner_of_record(record_key: str) -> Plan[str | None]:
    """The owner of the job or study whose record hash is `record_key`; None when it is gone.

    A record from before owners were kept belongs to the anonymous owner.
    """

    def decode(reply: list[Any]) -> str | None:
        record_id, owner = reply[0]
        if record_id is None:
            return None
        return ANONYMOUS if owner is None else str(owner.decode())

    return Plan(decode, commands=[("HMGET", record_key, "id", "owner")])


def _durations(fields: Mapping[bytes, bytes]) -> dict[JobStatus, DurationStats]:
    labels = [f"{bound:g}" for bound in DURATION_BUCKETS] + ["+Inf"]
    histograms = {}
    for status in (s for s in JobStatus if s.finished):
        prefix = status.value + ":"
        counts = [int(fields.get((prefix + label).encode(), 0)) for label in labels]
        cumulative = [sum(counts[: i + 1]) for i in range(len(counts))]
        histograms[status] = DurationStats(
            buckets=list(zip(labels, cumulative, strict=True)),
            total=float(fields.get((prefix + "sum").encode(), 0.0)),
            count=int(fields.get((prefix + "count").encode(), 0)),
        )
    return histograms


# --------------------------------------------------------------------- executors


def _sync(
    build: Callable[Concatenate[JobPlans, P], Plan[T]],
) -> Callable[Concatenate[JobStore, P], T]:
    def operation(self: JobStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(self.plans, *args, **kwargs))

    operation.__name__ = build.__name__
    operation.__doc__ = build.__doc__
    return operation


def _async(
    build: Callable[Concatenate[JobPlans, P], Plan[T]],
) -> Callable[Concatenate[AsyncJobStore, P], Coroutine[Any, Any, T]]:
    async def operation(self: AsyncJobStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(self.plans, *args, **kwargs))

    operation.__name__ = build.__name__
    operation.__doc__ = build.__doc__
    return operation


def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


def plans_from_settings(settings: Settings) -> JobPlans:
    """The plans for `settings`' namespace, TTLs and live-worker window."""
    return JobPlans(
        Keys(settings.namespace),
        job_ttl_seconds=settings.job_ttl_seconds,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        live_worker_seconds=settings.worker_silent_seconds,
    )


class JobStore:
    """The job store over a blocking redis-py client (worker, tests, tools)."""

    def __init__(self, client: redis.Redis, plans: JobPlans) -> None:
        self.client = client
        self.plans = plans
        self._scripts = {script.name: client.register_script(script.source) for script in SCRIPTS}

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        """A store on `settings.redis_url` for `settings.namespace`."""
        return cls(
            redis.Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=SOCKET_CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
            ),
            plans_from_settings(settings),
        )

    def close(self) -> None:
        self.client.close()

    def _run(self, plan: Plan[T]) -> T:
        while True:
            outcome = plan.decode(self._send(plan))
            if not isinstance(outcome, Plan):
                return outcome
            plan = outcome

    def _send(self, plan: Plan[Any]) -> Any:
        if plan.script is not None:
            return self._scripts[plan.script.name](keys=plan.keys, args=plan.args)
        if len(plan.commands) == 1 and not plan.atomic:
            return [self.client.execute_command(*plan.commands[0])]
        pipeline = self.client.pipeline(transaction=plan.atomic)
        for command in plan.commands:
            pipeline.execute_command(*command)
        return pipeline.execute()

    create = _sync(JobPlans.create)
    get = _sync(JobPlans.get)
    owner_of = _sync(JobPlans.owner_of)
    admit = _sync(JobPlans.admit)
    mark_running = _sync(JobPlans.mark_running)
    set_worker = _sync(JobPlans.set_worker)
    note_interrupted = _sync(JobPlans.note_interrupted)
    set_progress = _sync(JobPlans.set_progress)
    is_cancel_requested = _sync(JobPlans.is_cancel_requested)
    mark_succeeded = _sync(JobPlans.mark_succeeded)
    mark_failed = _sync(JobPlans.mark_failed)
    mark_cancelled = _sync(JobPlans.mark_cancelled)
    request_cancel = _sync(JobPlans.request_cancel)
    delete = _sync(JobPlans.delete)
    list_jobs = _sync(JobPlans.list_jobs)
    prune_expired = _sync(JobPlans.prune_expired)
    get_result = _sync(JobPlans.get_result)
    get_arrays = _sync(JobPlans.get_arrays)
    get_plot = _sync(JobPlans.get_plot)
    put_plot = _sync(JobPlans.put_plot)
    read_events = _sync(JobPlans.read_events)
    record_heartbeat = _sync(JobPlans.record_heartbeat)
    forget_worker = _sync(JobPlans.forget_worker)
    live_workers = _sync(JobPlans.live_workers)
    record_worker_jobs = _sync(JobPlans.record_worker_jobs)
    running_jobs = _sync(JobPlans.running_jobs)
    requeue_lost = _sync(JobPlans.requeue_lost)
    lost_workers = _sync(JobPlans.lost_workers)
    requeue_held = _sync(JobPlans.requeue_held)
    forget_report = _sync(JobPlans.forget_report)
    unsent_dispatches = _sync(JobPlans.unsent_dispatches)
    redispatch = _sync(JobPlans.redispatch)
    confirm_dispatch = _sync(JobPlans.confirm_dispatch)
    metrics = _sync(JobPlans.metrics)
    ping = _sync(JobPlans.ping)


class AsyncJobStore:
    """The job store for asyncio (the API).

    Commands share one auto-pipelined connection (`MultiplexedRedis`); only blocking
    reads (an event stream waiting for its next entry) take a pooled redis.asyncio
    connection of their own.
    """

    def __init__(
        self, client: redis.asyncio.Redis, plans: JobPlans, multiplexed: MultiplexedRedis
    ) -> None:
        self.client = client
        self.multiplexed = multiplexed
        self.plans = plans
        self._sha = {script.name: _sha1(script.source) for script in SCRIPTS}

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncJobStore:
        """A store on `settings.redis_url` for `settings.namespace`."""
        return cls(
            redis.asyncio.Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=SOCKET_CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
            ),
            plans_from_settings(settings),
            MultiplexedRedis.from_url(settings.redis_url),
        )

    async def close(self) -> None:
        await self.multiplexed.close()
        await self.client.aclose()

    async def _run(self, plan: Plan[T]) -> T:
        while True:
            outcome = plan.decode(await self._send(plan))
            if not isinstance(outcome, Plan):
                return outcome
            plan = outcome

    async def _send(self, plan: Plan[Any]) -> Any:
        if plan.script is not None:
            return await self._eval(plan.script, plan.keys, plan.args)
        if plan.blocking:
            return [await self.client.execute_command(*plan.commands[0])]
        if len(plan.commands) == 1 and not plan.atomic:
            return [await self.multiplexed.execute(*plan.commands[0])]
        return await self.multiplexed.execute_many(plan.commands, atomic=plan.atomic)

    async def _eval(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[str | bytes | int | float]
    ) -> Any:
        try:
            return await self.multiplexed.execute(
                "EVALSHA", self._sha[script.name], len(keys), *keys, *args
            )
        except redis.exceptions.NoScriptError:  # a restarted or flushed Redis
            await self.multiplexed.execute("SCRIPT", "LOAD", script.source)
            return await self.multiplexed.execute(
                "EVALSHA", self._sha[script.name], len(keys), *keys, *args
            )

    create = _async(JobPlans.create)
    get = _async(JobPlans.get)
    owner_of = _async(JobPlans.owner_of)
    admit = _async(JobPlans.admit)
    mark_running = _async(JobPlans.mark_running)
    set_worker = _async(JobPlans.set_worker)
    note_interrupted = _async(JobPlans.note_interrupted)
    set_progress = _async(JobPlans.set_progress)
    is_cancel_requested = _async(JobPlans.is_cancel_requested)
    mark_succeeded = _async(JobPlans.mark_succeeded)
    mark_failed = _async(JobPlans.mark_failed)
    mark_cancelled = _async(JobPlans.mark_cancelled)
    request_cancel = _async(JobPlans.request_cancel)
    delete = _async(JobPlans.delete)
    list_jobs = _async(JobPlans.list_jobs)
    prune_expired = _async(JobPlans.prune_expired)
    get_result = _async(JobPlans.get_result)
    get_arrays = _async(JobPlans.get_arrays)
    get_plot = _async(JobPlans.get_plot)
    put_plot = _async(JobPlans.put_plot)
    read_events = _async(JobPlans.read_events)
    record_heartbeat = _async(JobPlans.record_heartbeat)
    forget_worker = _async(JobPlans.forget_worker)
    live_workers = _async(JobPlans.live_workers)
    record_worker_jobs = _async(JobPlans.record_worker_jobs)
    running_jobs = _async(JobPlans.running_jobs)
    requeue_lost = _async(JobPlans.requeue_lost)
    lost_workers = _async(JobPlans.lost_workers)
    requeue_held = _async(JobPlans.requeue_held)
    forget_report = _async(JobPlans.forget_report)
    unsent_dispatches = _async(JobPlans.unsent_dispatches)
    redispatch = _async(JobPlans.redispatch)
    confirm_dispatch = _async(JobPlans.confirm_dispatch)
    metrics = _async(JobPlans.metrics)
    ping = _async(JobPlans.ping)
