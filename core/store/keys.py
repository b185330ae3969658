"""Every Redis key of a deployment, and nothing else spells one.

All keys start with the deployment's namespace (`Settings.namespace`), so
several deployments, or test sessions, can share one Redis. A job owns the
keys from `JobKeys`; they expire together once it has finished.

Layout, for namespace `gradwatch` and job `01J...`:

    gradwatch:job:01J...              hash: the job record
    gradwatch:job:01J...:result       string: result.json
    gradwatch:job:01J...:arrays       string: arrays.npz
    gradwatch:job:01J...:plots        hash: "<name>" (default size) or
                                      "<name>@<w>x<h>@<dpi>" -> PNG, and "<field>#etag"
    gradwatch:job:01J...:events       stream: progress and state changes
    gradwatch:jobs                    sorted set: every job id, one score, ordered by id
                                      (ids sort by creation time)
    gradwatch:jobs:status:<status>    sorted set: the ids with that status, same order
    gradwatch:jobs:expiry             sorted set: finished id -> when its keys expire
    gradwatch:jobs:owner:<owner>      sorted set: the owner's job ids, same order; and
    gradwatch:jobs:status:<s>:owner:<owner>   the owner's ids with status <s> (its queued
                                      and running counts are its active jobs)
    gradwatch:jobs:owners             hash: job id -> owner, so that ids whose records
                                      expired can leave their owner's indexes
    gradwatch:submissions:<owner>     sorted set: the owner's submissions in the last minute
    gradwatch:idempotency:<sha256>    string: "<job id> <request fingerprint>"
    gradwatch:study:01J...            hash: a study record (its children are ordinary jobs)
    gradwatch:study:01J...:seen       hash: child id -> the child status its events last told
    gradwatch:study:01J...:series     string: the numbers its plots are drawn from (JSON)
    gradwatch:study:01J...:plots      hash: PNGs and ETags, laid out like a job's
    gradwatch:study:01J...:events     stream: children's state changes and the study's
    gradwatch:studies                 sorted set: every study id, one score, ordered by id
    gradwatch:studies:owner:<owner>   the owner's study ids, same order (`owned(studies, owner)`)
    gradwatch:studies:expiry          sorted set: finished study id -> when its keys expire
    gradwatch:dataset:01J...          hash: an uploaded dataset's record (owner, meta JSON,
                                      dedupe key, created_at)
    gradwatch:dataset:01J...:data     string: its arrays, a compressed NPZ
    gradwatch:dataset:01J...:jobs     set: ids of the jobs given it (the queued and running
                                      ones keep it from being deleted)
    gradwatch:datasets:owner:<owner>  sorted set: the owner's dataset ids, one score,
                                      ordered by id (`owned(datasets, owner)`)
    gradwatch:datasets:hashes:owner:<owner>  hash: content hash, label and task -> the
                                      owner's dataset of them (one copy of the same upload)
    gradwatch:renders                 sorted set: "<plots key> <field>" of each PNG cached at
                                      another size than the default -> when it was stored
    gradwatch:renders:sizes           hash: the same member -> its bytes
    gradwatch:renders:bytes           string: their total, kept under the render budget
    gradwatch:renders:drawn:<owner>   string: renders drawn for the owner this minute
    gradwatch:workers:<queue>         sorted set: worker hostname -> last heartbeat
    gradwatch:worker:<hostname>:jobs  string: "<time> <job id>:<dispatch>...", the messages
                                      the worker held at its last heartbeat, started or
                                      not (the reaper's evidence)
    gradwatch:jobs:outbox             sorted set: "<job id> <dispatch>" -> when a worker
                                      claimed it, until the worker confirms its message sent
                                      (a reaper queues again what stays unconfirmed)
    gradwatch:jobs:claimed:owner:<owner>   sorted set: the owner's jobs claimed by a worker
                                      and not yet started -> when claimed (with its running
                                      jobs, what its share and its running cap count)
    gradwatch:dispatch:<queue>:owners sorted set: owner with work waiting -> when a worker
                                      last took one of its units (the dispatcher's turns)
    gradwatch:dispatch:<queue>:units:<owner>  list: the owner's units waiting, oldest first:
                                      "<since> <graph>/<members> <id>:<dispatch>,... <task>"
    gradwatch:dispatch:<queue>:waiting   sorted set: job id -> since when it waits (the depth)
    gradwatch:dispatch:<queue>:idle   hash: hostname -> the graphs it holds warm, while idle
    gradwatch:dispatch:<queue>:wake   list: a token per unit queued, for idle workers
    gradwatch:worker:<hostname>:wake  list: a token that wakes that one worker
    gradwatch:metrics:durations       hash: job duration histogram counters
    gradwatch:celery:...              Celery's own broker keys (its global_keyprefix)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from core.access.api_keys import ANONYMOUS
from core.experiment.jobs import JobStatus


class _Beside:
    """A key named after its record's key: `<record>:<name of the attribute>`."""

    def __init__(self, what: str) -> None:
        self.__doc__ = what
        self.suffix = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.suffix = f":{name}"

    def __get__(self, keys: RecordKeys, owner: type | None = None) -> str:
        return keys.record + self.suffix


@dataclass(frozen=True, slots=True)
class RecordKeys:
    """The keys a job or a study owns, all named after its record's key: they are
    created, expired and deleted together."""

    record: str

    plots = _Beside('hash: "<name>" (default size) or "<name>@<w>x<h>@<dpi>" -> PNG, ETags')
    events = _Beside("stream: progress and state changes")

    # The keys a kind of record adds, in the order its class declares them.
    _own: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        cls._own = tuple(name for name, value in vars(cls).items() if isinstance(value, _Beside))

    def all(self) -> tuple[str, ...]:
        """Every key, in the order the record's scripts take them: the record, the keys
        its kind adds, its plots and its events."""
        return (self.record, *(getattr(self, name) for name in self._own), self.plots, self.events)


class JobKeys(RecordKeys):
    """The keys one job owns."""

    __slots__ = ()
    result = _Beside("string: result.json")
    arrays = _Beside("string: arrays.npz")


class StudyKeys(RecordKeys):
    """The keys one study owns."""

    __slots__ = ()
    seen = _Beside("hash: child id -> the child status its events last told")
    series = _Beside("string: the numbers its plots are drawn from (JSON)")


class DatasetKeys(RecordKeys):
    """The keys one uploaded dataset owns (it does not expire: an owner deletes it)."""

    __slots__ = ()
    data = _Beside("string: the arrays, a compressed NPZ")
    jobs = _Beside("set: ids of the jobs given the dataset")


@dataclass(frozen=True, slots=True)
class DispatcherKeys:
    """The keys of one queue's dispatcher (the layout above), all named after its prefix;
    the dispatcher's scripts (core.store.scripts.dispatch) name them the same way."""

    prefix: str
    owners: str
    waiting: str
    idle: str
    wake: str

    @classmethod
    def named(cls, prefix: str) -> DispatcherKeys:
        return cls(prefix, *(prefix + name for name in ("owners", "waiting", "idle", "wake")))

    def units(self, owner: str) -> str:
        """list: the owner's units waiting, oldest first"""
        return f"{self.prefix}units:{owner}"


class Keys:
    """Key names for one namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._prefix = f"{namespace}:"
        self.jobs = f"{namespace}:jobs"
        self.expiry = f"{namespace}:jobs:expiry"
        self.durations = f"{namespace}:metrics:durations"
        self.job_owners = f"{namespace}:jobs:owners"
        self.outbox = f"{namespace}:jobs:outbox"
        # Jobs a worker claimed from the dispatcher and has not started yet (`owned`).
        self.claimed = f"{namespace}:jobs:claimed"
        # Each queue's dispatcher starts with this (`dispatcher`); the scripts name a
        # job's from its queue the same way.
        self.dispatch_base = f"{namespace}:dispatch:"
        self.studies = f"{namespace}:studies"
        # Renders at other sizes than the default, across jobs and studies, counted
        # against one byte budget (core.store.plots).
        self.renders = f"{namespace}:renders"
        self.render_sizes = f"{namespace}:renders:sizes"
        self.render_bytes = f"{namespace}:renders:bytes"
        self.studies_expiry = f"{namespace}:studies:expiry"
        # Only ever read through `owned(..., owner)`: datasets are listed per owner.
        self.datasets = f"{namespace}:datasets"
        self.dataset_hashes = f"{namespace}:datasets:hashes"
        # Celery prefixes every broker key with this (kombu's global_keyprefix).
        self.celery_prefix = f"{namespace}:celery:"
        # One index per status, in JobStatus order (the job scripts take them so).
        self.by_status = tuple(self.jobs_with_status(status) for status in JobStatus)

    def job(self, job_id: str) -> JobKeys:
        """The keys of job `job_id`."""
        return JobKeys(f"{self._prefix}job:{job_id}")

    def study(self, study_id: str) -> StudyKeys:
        """The keys of study `study_id`."""
        return StudyKeys(f"{self._prefix}study:{study_id}")

    def dataset(self, dataset_id: str) -> DatasetKeys:
        """The keys of uploaded dataset `dataset_id`."""
        return DatasetKeys(f"{self._prefix}dataset:{dataset_id}")

    def job_record_prefix(self) -> str:
        """What every job's record key starts with (a script appends the id)."""
        return f"{self._prefix}job:"

    def jobs_with_status(self, status: str) -> str:
        """The index of jobs whose status is `status`."""
        return f"{self._prefix}jobs:status:{status}"

    def idempotency(self, key: str, owner: str = ANONYMOUS) -> str:
        """Where an owner's Idempotency-Key's job id lives; hashed so any header value makes
        a short key, and scoped to the owner so no two owners' keys meet."""
        scoped = key if owner == ANONYMOUS else f"{owner}\n{key}"
        digest = hashlib.sha256(scoped.encode()).hexdigest()
        return f"{self._prefix}idempotency:{digest}"

    def submissions(self, owner: str) -> str:
        """The owner's recent submissions (time -> request id), for its rate limit."""
        return f"{self._prefix}submissions:{owner}"

    def renders_drawn(self, owner: str) -> str:
        """The renders drawn for the owner in its current minute, for its render limit."""
        return f"{self._prefix}renders:drawn:{owner}"

    def worker_heartbeats(self, queue: str) -> str:
        """Hostname -> time of last heartbeat, for the workers consuming `queue`."""
        return f"{self._prefix}workers:{queue}"

    def worker_jobs(self, hostname: str) -> str:
        """The jobs worker `hostname` was running at its last heartbeat, and when."""
        before, after = self.worker_jobs_around()
        return f"{before}{hostname}{after}"

    def worker_jobs_around(self) -> tuple[str, str]:
        """What comes before and after the hostname in `worker_jobs`: for a script that
        reads the reports of the workers it finds in a heartbeat set."""
        return f"{self._prefix}worker:", ":jobs"

    def dispatcher(self, queue: str) -> DispatcherKeys:
        """The keys of the dispatcher that hands `queue`'s jobs to its workers."""
        return DispatcherKeys.named(f"{self.dispatch_base}{queue}:")

    def worker_wake(self, hostname: str) -> str:
        """The list whose token wakes worker `hostname` alone (core.store.dispatch)."""
        before, after = self.worker_wake_around()
        return f"{before}{hostname}{after}"

    def worker_wake_around(self) -> tuple[str, str]:
        """What comes before and after the hostname in `worker_wake`, for a script."""
        return f"{self._prefix}worker:", ":wake"

    def celery_queue(self, queue: str) -> str:
        """The Redis list holding `queue`'s waiting Celery messages (its depth is its LLEN)."""
        return f"{self.celery_prefix}{queue}"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of the namespace (tests and tooling only)."""
        return f"{self._prefix}*"


def owned(index: str, owner: str) -> str:
    """The owner's part of index `index` (e.g. `Keys.jobs`, `Keys.jobs_with_status(s)`).

    The scripts (core.store.scripts) derive these names the same way, from the
    declared index and the job's owner, because the worker's transitions do not know
    a job's owner: the store runs on one Redis, not a cluster.
    """
    return f"{index}:owner:{owner}"


def plot_field(name: str, size: tuple[int, int, int] | None = None) -> str:
    """The field of a job's plots hash holding plot `name` at (width, height, dpi).

    `size` None is the default size the worker renders when the job ends.
    """
    if size is None:
        return name
    width, height, dpi = size
    return f"{name}@{width}x{height}@{dpi}"


def plot_etag_field(field: str) -> str:
    """The field holding the ETag of the PNG in `field`."""
    return f"{field}#etag"
