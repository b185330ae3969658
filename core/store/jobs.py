"""A job's life in the store: created, run, progressed, finished, cancelled, deleted;
listed, and its results, PNGs and events read.

Every state change is one Lua script (core.store.scripts.jobs), so it is atomic:
a cancel racing a finish leaves exactly one of them applied. Times come from the
Redis server's clock, so workers on several machines agree. The front ends
(core.store.stores) expose each operation as `store.<name>`, job_id positional,
everything else keyword-only:

    create(*, spec, queue, idempotency_key=None, fingerprint="", owner=ANONYMOUS,
           max_active=0) -> Created
        A queued job of `owner` (record + indexes + "queued" event), waiting on its
        queue's dispatcher (core.store.dispatch) for a worker to claim it. With an
        Idempotency-Key (scoped to the owner) a
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
    set_progress(job_id, *, epoch, epochs, metrics=None, earlier=()) -> bool
        Records progress and emits a progress event for each epoch done since the last
        call (`earlier`, then `epoch`). False when training should stop:
        the job is no longer running (cancelled, deleted, finished) or a cancel was asked.
    is_cancel_requested(job_id) -> bool      True also when the job is gone or finished.
    mark_succeeded(job_id, *, summary: Summary, result_json: str, plots: {name: png},
                   arrays: bytes | None = None) -> bool
    mark_failed(job_id, *, error_type: str, message: str) -> bool
    mark_cancelled(job_id) -> bool
        Each finishing call returns False (and changes nothing) unless the job was still
        running (or, for failed/cancelled, queued): a stale delivery is a no-op.
    request_cancel(job_id) -> CancelOutcome | None
        Queued: cancelled now. Running: cancel_requested set, the worker stops within
        about a second (worker.progress). Finished: unchanged. None for an unknown job.
    delete(job_id) -> bool
    list_jobs(*, status=None, limit=50, cursor=None, owner=None) -> JobPage
        Newest first; with `owner`, only that owner's jobs (from its own indexes).
    prune_expired(*, limit=1000) -> int
    get_result(job_id) / get_arrays(job_id) -> Stored
    get_plot(job_id, *, field, body=True) -> StoredPlot
    put_plot(job_id, *, field, png) -> str | None                   (caches a rendered size)
    read_events(job_id, *, after="0", block_ms=None, count=100) -> list[JobEvent]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.access.api_keys import ANONYMOUS
from core.experiment.grouping import graph_signature
from core.experiment.jobs import JobStatus, Summary, new_job_id
from core.experiment.spec import ExperimentSpec
from core.queue.tasks import training_task
from core.store.admission import TooManyActiveJobs
from core.store.events import EVENTS_MAXLEN, JobEvent, read_stream
from core.store.keys import owned
from core.store.pages import Page, newest_first
from core.store.plans import Arg, Plan, Plans, after, applied, optional
from core.store.plots import StoredPlot, cache_plot, default_plot_fields, read_plot
from core.store.records import (
    ErrorInfo,
    JobRecord,
    WorkerInfo,
    dumps_compact,
    job_record,
    job_records,
    stored_status,
)
from core.store.scripts import LuaScript
from core.store.scripts.jobs import (
    CREATE,
    DELETE,
    MARK_RUNNING,
    MARK_STOPPED,
    MARK_SUCCEEDED,
    NOTE_INTERRUPTED,
    PRUNE_OWNED,
    READ_OWNED,
    REQUEST_CANCEL,
    SET_PROGRESS,
    SET_WORKER,
)

JobPage = Page[JobRecord]


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
class Stored:
    """A stored blob (result, arrays) and the status of its job (None: unknown job)."""

    status: JobStatus | None
    content: bytes | None


@dataclass(frozen=True, slots=True)
class _CreateRequest:
    """What `create` was asked, kept for a replay that has to create after all."""

    spec: ExperimentSpec
    queue: str
    idempotency_key: str | None
    fingerprint: str
    owner: str
    max_active: int


class IdempotencyKeyReused(Exception):  # noqa: N818 - reads as the event it reports
    """An Idempotency-Key came back with a different request than the one it first made."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"the Idempotency-Key was first used for job {job_id} with another body")
        self.job_id = job_id


def _progress_event(epoch: int, epochs: int, metrics: Mapping[str, float | None] | None) -> str:
    event: dict[str, Any] = {"epoch": epoch, "epochs": epochs}
    for name, value in (metrics or {}).items():
        event[name] = None if value is None or not math.isfinite(value) else float(value)
    return dumps_compact(event)


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


class JobPlans(Plans):
    """Every job operation as a pure function from arguments to a `Plan`."""

    def job_script_keys(self, job_id: str, *extra: str) -> list[str]:
        """KEYS of a job script (core.store.scripts.jobs.JOB_LAYOUT), then `extra`."""
        return [
            *self.keys.job(job_id).all(),
            self.keys.jobs,
            self.keys.expiry,
            self.keys.durations,
            *self.keys.by_status,
            self.keys.job_owners,
            *extra,
        ]

    def job_script_args(self, job_id: str, *extra: Arg) -> list[Arg]:
        """ARGV of a job script: the id, the TTL, the events' cap, then `extra`."""
        return [job_id, self.job_ttl_seconds, EVENTS_MAXLEN, *extra]

    def _change(self, script: LuaScript, job_id: str, *args: Arg) -> Plan[bool]:
        """A job script that replies 1 when it changed the job: True then."""
        return Plan(
            applied,
            script=script,
            keys=self.job_script_keys(job_id),
            args=self.job_script_args(job_id, *args),
        )

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
        keys = self.job_script_keys(new_id)
        idempotency = ""
        if request.idempotency_key is not None:
            keys.append(self.keys.idempotency(request.idempotency_key, request.owner))
            idempotency = f"{new_id} {request.fingerprint}"
        args = self.job_script_args(
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
            self.keys.dispatch_base,
            graph_signature(request.spec),
        )

        def decode(reply: list[Any]) -> Created | Plan[Created]:
            if reply[0] == b"created":
                record = job_record(reply[1])
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
            record = job_record(reply[0])
            if record is not None:
                return Created(record, new=False)
            # The first job was deleted or has expired: the key now names a new one,
            # unless a concurrent replay got there first (then that one is replayed).
            return self._create(request, stale=value)

        return Plan(decode, commands=[("HGETALL", self.keys.job(job_id).record)])

    def owner_of(self, job_id: str) -> Plan[str | None]:
        """The owner of `job_id`, or None for an unknown (or expired) job."""
        return owner_of_record(self.keys.job(job_id).record)

    def get(self, job_id: str) -> Plan[JobRecord | None]:
        """The record of `job_id`, or None."""
        return Plan(
            lambda reply: job_record(reply[0]),
            commands=[("HGETALL", self.keys.job(job_id).record)],
        )

    def get_owned(self, job_id: str, *, owner: str | None) -> Plan[JobRecord | None]:
        """The record of `job_id` when `owner` owns it (None: whoever does); None, by the
        same path and work, for an unknown job and for another owner's."""
        if owner is None:
            return self.get(job_id)
        return Plan(
            lambda reply: None if reply is None else job_record(reply),
            script=READ_OWNED,
            keys=[self.keys.job(job_id).record],
            args=[owner, ANONYMOUS],
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
        args = self.job_script_args(
            job_id,
            dumps_compact(worker.to_json_dict()),
            max_deliveries,
            optional(dispatch),
            "" if task is None else dumps_compact(dict(task)),
        )

        def decode(reply: list[Any]) -> JobRecord | None:
            return job_record(reply[1]) if reply[0] == b"running" else None

        return Plan(decode, script=MARK_RUNNING, keys=self.job_script_keys(job_id), args=args)

    def note_interrupted(self, job_id: str, *, hostname: str, note: str) -> Plan[bool]:
        """Worker `hostname` lost its connection to Redis and Celery stopped its run of
        `job_id` (to deliver it again): that delivery does not count against
        max_deliveries, as it says nothing of the job. `note` identifies the word, so that
        a retried call counts once; False when nothing was counted.
        """
        return self._change(NOTE_INTERRUPTED, job_id, hostname, note)

    def set_worker(self, job_id: str, *, worker: WorkerInfo, delivery: int) -> Plan[bool]:
        """Name in full the worker of delivery `delivery` while it runs the job.

        mark_running comes first, before the worker loads its engine (seconds, on a
        fresh process), so that the job is `running` as soon as a worker holds it; what
        only the engine knows (a GPU's name) is written here once it is loaded.
        """
        return self._change(SET_WORKER, job_id, dumps_compact(worker.to_json_dict()), delivery)

    def set_progress(
        self,
        job_id: str,
        *,
        epoch: int,
        epochs: int,
        metrics: Mapping[str, float | None] | None = None,
        delivery: int | None = None,
        earlier: Sequence[tuple[int, Mapping[str, float | None]]] = (),
    ) -> Plan[bool]:
        """Record epoch `epoch` of `epochs` done, with its `metrics`, after the epochs
        `earlier` ((epoch, metrics), oldest first) not recorded yet: one progress event
        each, in one round trip. False when training should stop.

        With `delivery` (the fencing token), False also once the job was delivered again.
        """
        events = [_progress_event(done, epochs, logs) for done, logs in earlier]
        events.append(_progress_event(epoch, epochs, metrics))
        return self._change(SET_PROGRESS, job_id, epoch, epochs, optional(delivery), *events)

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
        return self._change(
            MARK_SUCCEEDED,
            job_id,
            summary_json,
            result_json,
            arrays or b"",
            dumps_compact(list(plots)),
            f'{{"status":"succeeded","summary":{summary_json}}}',
            optional(delivery),
            *default_plot_fields(plots),
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
        return self._change(
            MARK_STOPPED, job_id, status.value, error, event, optional(delivery), optional(dispatch)
        )

    def request_cancel(self, job_id: str) -> Plan[CancelOutcome | None]:
        """Cancel a queued job now, or ask a running one to stop (within about a second)."""

        def decode(reply: list[Any]) -> CancelOutcome | None:
            if reply[0] == b"missing":
                return None
            record = job_record(reply[1])
            assert record is not None
            return CancelOutcome(JobStatus(reply[0].decode()), record)

        args = self.job_script_args(job_id)
        return Plan(decode, script=REQUEST_CANCEL, keys=self.job_script_keys(job_id), args=args)

    def delete(self, job_id: str) -> Plan[bool]:
        """Remove the job and everything stored for it; False when it was unknown."""
        return self._change(DELETE, job_id)

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> Plan[JobPage]:
        """Jobs newest first, optionally of one status and owner, `limit` per page from `cursor`.

        A page may hold fewer than `limit` jobs when some expired meanwhile.
        """
        index = self.keys.jobs if status is None else self.keys.jobs_with_status(status)
        if owner is not None:
            index = owned(index, owner)
        return newest_first(index, limit=limit, cursor=cursor, read=self._page)

    def _page(self, ids: list[str], next_cursor: str | None) -> Plan[JobPage]:
        def page(replies: list[Any]) -> JobPage | Plan[JobPage]:
            found = Page(job_records(replies), next_cursor)
            if len(found.items) == len(ids):
                return found
            # Some entries outlived their records: prune them, then answer.
            return after(self.prune_expired(), found)

        return Plan(page, commands=self._read_records(ids))

    def _read_records(self, job_ids: Sequence[str]) -> list[tuple[str, str]]:
        """The commands that read the records of `job_ids` (decoded by `job_records`)."""
        return [("HGETALL", self.keys.job(job_id).record) for job_id in job_ids]

    def prune_expired(self, *, limit: int = 1000) -> Plan[int]:
        """Drop up to `limit` expired jobs from the indexes (their owners' too); the count."""
        keys = [self.keys.job_owners, self.keys.expiry, self.keys.jobs, *self.keys.by_status]
        return Plan(int, script=PRUNE_OWNED, keys=keys, args=[limit])

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
            lambda reply: Stored(stored_status(reply[1]), reply[0]), commands=commands, atomic=True
        )

    def get_plot(self, job_id: str, *, field: str, body: bool = True) -> Plan[StoredPlot]:
        """A stored PNG (only its ETag when not `body`); on a miss, the job's status."""
        return read_plot(self.keys.job(job_id), field=field, body=body)

    def put_plot(self, job_id: str, *, field: str, png: bytes) -> Plan[str | None]:
        """Cache a rendered PNG beside a finished job; its ETag, or None if not cached."""
        budget = self.render_cache_bytes
        return cache_plot(self.keys.job(job_id), self.keys, field=field, png=png, budget=budget)

    def read_events(
        self, job_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> Plan[list[JobEvent]]:
        """Events after stream id `after`, waiting up to `block_ms` for the first one."""
        stream = self.keys.job(job_id).events
        return read_stream(stream, after=after, block_ms=block_ms, count=count)
