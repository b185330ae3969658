"""Studies in the Redis store: a record beside its children, its state derived from theirs.

A study's children are ordinary jobs (core.store.jobs). The study record keeps
their ids; its progress and status are read from their records, never
counted separately, so nothing a worker does (or fails to do) can leave the
two out of step. Every read of an unfinished study is one Lua script
(`RECONCILE`) that reads every child atomically and, in the same step, adds
to the study's event stream each child state change not yet told there (a
`seen` hash remembers what was told), so every reader sees the same events
in the same order, each once.

When a read finds every child finished, the reader seals the study (`SEAL`):
status, summary, final child states and the final `state` event in one
step, once (a second sealer finds it sealed and changes nothing). The
summary is a pure function of the children's final records, so whichever
process seals (the worker that ran the last child, or an API process on the
first read after it) stores the same one, and a sealer that dies before
sealing loses nothing: the next read seals. Sealing starts the study's TTL.

`StudyStore` and `AsyncStudyStore` extend the job stores (same executors,
same connections) with the study operations:

    create_study(*, plan: StudyPlan, queues: [queue], plots, owner=ANONYMOUS, max_active=0)
        -> StudyRecord       The study and its children (queued jobs), in one step
    get_study(study_id) -> StudyRecord | None          (reconciles; seals when complete)
    list_studies(*, limit=50, cursor=None) -> StudyPage (stored records, newest first)
    cancel_study(study_id) -> StudyCancel | None        (study flag, then every child)
    delete_study(study_id) -> list[str] | None          (study keys, then every child)
    get_study_plot(study_id, *, field, body=True) -> StoredPlot
    put_study_plot(study_id, *, field, png) -> str | None
    get_study_series(study_id) -> bytes | None
    put_study_series(study_id, *, series_json) -> bool
    read_study_events(study_id, *, after="0", block_ms=None, count=100) -> list[JobEvent]

Example:
    >>> store = StudyStore.from_settings(get_settings())
    >>> record = store.get_study(study_id)
    >>> record.status, record.progress["succeeded"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson
import redis
import redis.asyncio

from core.access.api_keys import ANONYMOUS
from core.experiment.jobs import JobStatus, dumps_compact, iso_time, new_job_id, study_child_task
from core.experiment.studies import MAX_CHILDREN, ChildOutcome, StudyPlan, study_status, summarize
from core.settings import Settings
from core.store.jobs import (
    EVENTS_MAXLEN,
    AsyncJobStore,
    JobEvent,
    JobStore,
    Plan,
    StoredPlot,
    TooManyActiveJobs,
    decode_cursor,
    encode_cursor,
    plans_from_settings,
    png_etag,
)
from core.store.keys import Keys, owned, plot_etag_field, plot_field
from core.store.multiplex import MultiplexedRedis
from core.store.scripts import NEW_JOB, PUT_PLOT, LuaScript

T = TypeVar("T")
P = ParamSpec("P")

# Two state changes per child (running, finished) and the study's own: every event of
# the largest study fits, so a client resuming with Last-Event-ID never misses one.
STUDY_EVENTS_MAXLEN = 2 * MAX_CHILDREN + 20
# A complete study waits this long for the worker drawing its plots before a reader
# seals it without them (they are then drawn on request): a worker that dies drawing
# leaves a study that finishes anyway.
SEAL_GRACE_SECONDS = 15.0
# PNGs (sizes x plots) cached per study, as for a job.
MAX_CACHED_STUDY_PLOTS = 64
CHILD_FIELDS = ("status", "epoch", "epochs", "started_at", "finished_at", "summary")

# ----------------------------------------------------------------------- scripts

_PRELUDE = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local finished = {succeeded = true, failed = true, cancelled = true, missing = true}
local function emit(events, cap, kind, data)
  redis.call('XADD', events, 'MAXLEN', '~', cap, '*', 'type', kind, 'data', data)
end
"""

CREATE_STUDY = LuaScript(
    "create_study",
    _PRELUDE
    + NEW_JOB
    + """
-- KEYS[1] record, [2] events, [3] studies index, [4] the owner's, [5] jobs index,
-- [6] queued jobs index, [7] running jobs index, [8] job owners, [9] the job outbox,
-- then each child's record and events; ARGV[1] id, [2] cap, [3] a job's events cap,
-- [4] owner, [5] the owner's limit of active jobs (0: none), [6] n children,
-- [7] m, [8 .. 7+m] record field/value pairs, then per child id, queue, spec JSON,
-- epochs, task JSON.
-- The study and every child in one step: a creation that fails part-way leaves none
-- of them, and every child waits in the outbox until its message is confirmed sent.
local owner, limit, n, m = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if limit > 0 then
  local active = redis.call('ZCARD', KEYS[6] .. ':owner:' .. owner)
    + redis.call('ZCARD', KEYS[7] .. ':owner:' .. owner)
  if active + n > limit then return {'limited', active} end
end
local t = now()
local at = {jobs = KEYS[5], queued = KEYS[6], owners = KEYS[8], outbox = KEYS[9]}
for i = 0, n - 1 do
  local a = 8 + m + 5 * i
  at.record, at.events = KEYS[10 + 2 * i], KEYS[11 + 2 * i]
  new_job(at, {id = ARGV[a], queue = ARGV[a + 1], spec = ARGV[a + 2], epochs = ARGV[a + 3],
               owner = owner, task = ARGV[a + 4]}, ARGV[3], t)
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'queued', 'created_at',
           string.format('%.6f', t), 'cancel_requested', 0, unpack(ARGV, 8, 7 + m))
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
emit(KEYS[2], ARGV[2], 'state', '{"status":"queued"}')
return {'created', redis.call('HGETALL', KEYS[1])}
""",
)

RECONCILE = LuaScript(
    "reconcile_study",
    _PRELUDE
    + """
-- KEYS[1] record, [2] seen, [3] events, [4..] child records; ARGV[1] cap, [2..] child ids.
-- Reads every child, tells the events each state change not yet told, moves a queued
-- study to running once a child has left the queue. Replies the study's status, the
-- server's time, then per child its CHILD_FIELDS (status 'missing' once it is gone).
local record, seen, events, cap = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local status = redis.call('HGET', record, 'status')
if not status then return {'missing'} end
if finished[status] then return {status} end
local n = #KEYS - 3
local states, told, done = {}, {}, 0
for i = 1, n do
  local f = redis.call('HMGET', KEYS[3 + i], 'status', 'epoch', 'epochs', 'started_at',
                       'finished_at', 'summary')
  if not f[1] then f[1] = 'missing' end
  states[i] = f
  told[i] = redis.call('HGET', seen, ARGV[1 + i])
  if told[i] and finished[told[i]] then done = done + 1 end
end
local started = false
for i = 1, n do
  local s = states[i][1]
  if s ~= 'queued' then started = true end
  if s ~= 'queued' and s ~= told[i] then
    if finished[s] then done = done + 1 end
    redis.call('HSET', seen, ARGV[1 + i], s)
    local data = '{"child":"' .. ARGV[1 + i] .. '","index":' .. (i - 1) .. ',"status":"' .. s
      .. '","finished":' .. done .. ',"children":' .. n
    if s == 'succeeded' and states[i][6] then data = data .. ',"summary":' .. states[i][6] end
    emit(events, cap, 'child', data .. '}')
  end
end
if status == 'queued' and started then
  status = 'running'
  redis.call('HSET', record, 'status', status)
  emit(events, cap, 'state', '{"status":"running"}')
end
local reply = {status, string.format('%.6f', now())}
for i = 1, n do reply[i + 2] = states[i] end
return reply
""",
)

SEAL = LuaScript(
    "seal_study",
    _PRELUDE
    + """
-- KEYS[1] record, [2] seen, [3] series, [4] plots, [5] events, [6] studies expiry;
-- ARGV[1] id, [2] ttl, [3] cap, [4] status, [5] event JSON, [6] series JSON or '',
-- [7] n, [8 .. 7+n] record field/value pairs, [8+n ..] plot field/value pairs.
-- Seals once: a sealed study keeps its status and summary, but still takes the series
-- and PNGs (once each) from a worker that drew them after a reader sealed it.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local n, sealed = tonumber(ARGV[7]), 0
if not finished[status] then
  redis.call('HSET', KEYS[1], 'status', ARGV[4])
  if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 8, 7 + n)) end
  if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6]) end
  if #ARGV > 7 + n then redis.call('HSET', KEYS[4], unpack(ARGV, 8 + n)) end
  emit(KEYS[5], ARGV[3], 'state', ARGV[5])
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
  redis.call('ZADD', KEYS[6], now() + tonumber(ARGV[2]), ARGV[1])
  return 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[6], 'PX', ttl, 'NX') end
if #ARGV > 7 + n then
  local plots = {}
  for i = 8 + n, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 0 then
      plots[#plots + 1] = ARGV[i]; plots[#plots + 1] = ARGV[i + 1]
    end
  end
  if #plots > 0 then redis.call('HSET', KEYS[4], unpack(plots)) end
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return 0
""",
)

CANCEL_STUDY = LuaScript(
    "cancel_study",
    _PRELUDE
    + """
-- KEYS[1] record, [2] events; ARGV[1] cap. Replies the status and the children (JSON).
local state = redis.call('HMGET', KEYS[1], 'status', 'children', 'cancel_requested')
if not state[1] then return {'missing'} end
if not finished[state[1]] and state[3] ~= '1' then
  redis.call('HSET', KEYS[1], 'cancel_requested', 1)
  emit(KEYS[2], ARGV[1], 'cancel_requested', '{"cancel_requested":true}')
end
return {state[1], state[2]}
""",
)

CLAIM_DRAWING = LuaScript(
    "claim_study_drawing",
    _PRELUDE
    + """
-- KEYS[1] record; ARGV[1] who. 1 for the first claim on an unsealed study, else 0.
local status = redis.call('HGET', KEYS[1], 'status')
if not status or finished[status] then return 0 end
return redis.call('HSETNX', KEYS[1], 'drawing', ARGV[1])
""",
)

DELETE_STUDY = LuaScript(
    "delete_study",
    """
-- KEYS[1..5] the study's keys, [6] studies index, [7] expiry, [8] the owner's index;
-- ARGV[1] id. Replies its children (JSON), or nil when it was unknown.
local children = redis.call('HGET', KEYS[1], 'children')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
for i = 6, 8 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return children
""",
)

PUT_SERIES = LuaScript(
    "put_study_series",
    """
-- KEYS[1] record, [2] series; ARGV[1] JSON. Once, for a sealed study, expiring with it.
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl, 'NX') then return 1 end
return 0
""",
)

STUDY_SCRIPTS: tuple[LuaScript, ...] = (
    CREATE_STUDY,
    RECONCILE,
    SEAL,
    CANCEL_STUDY,
    CLAIM_DRAWING,
    DELETE_STUDY,
    PUT_SERIES,
)

# ------------------------------------------------------------------------ records


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


def _json(fields: Mapping[bytes, bytes], name: bytes) -> Any:
    value = fields.get(name)
    return None if value is None else orjson.loads(value)


def _time(fields: Mapping[bytes, bytes], name: bytes) -> float | None:
    value = fields.get(name)
    return float(value) if value else None


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
            owner=fields.get(b"owner", ANONYMOUS.encode()).decode(),
            plots=tuple(_json(fields, b"plots") or ()),
            cancel_requested=fields.get(b"cancel_requested") == b"1",
            started_at=_time(fields, b"started_at"),
            finished_at=_time(fields, b"finished_at"),
            summary=_json(fields, b"summary"),
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
        }


@dataclass(frozen=True, slots=True)
class StudyPage:
    """A page of studies, newest first; `next_cursor` None on the last page."""

    items: list[StudyRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StudyCancel:
    """What a study cancel found: its status before, and its children to cancel."""

    before: JobStatus
    children: list[str]


def _hash(reply: Any) -> Mapping[bytes, bytes]:
    if isinstance(reply, Mapping):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _number(value: bytes | None) -> float | None:
    return float(value) if value else None


# -------------------------------------------------------------------------- plans


class StudyPlans:
    """Every study operation as a pure function from arguments to a `Plan`."""

    def __init__(self, keys: Keys, *, ttl_seconds: int) -> None:
        self.keys = keys
        self.ttl_seconds = ttl_seconds

    def create_study(
        self,
        *,
        plan: StudyPlan,
        queues: Sequence[str],
        plots: Sequence[str],
        owner: str = ANONYMOUS,
        max_active: int = 0,
    ) -> Plan[StudyRecord]:
        """A queued study of `owner` and its children, one queued job per child spec of
        `plan` on the queue `queues` names for it, all in one step.

        Each child's task trains it and then updates the study; like any new job it waits
        in the outbox until `confirm_dispatch(child, dispatch=0)` (a reaper sends it
        otherwise). With `max_active` > 0, raises TooManyActiveJobs (and makes nothing)
        when the owner's queued and running jobs plus the children would pass it.
        """
        study_id = new_job_id()
        children = [new_job_id() for _ in plan.children]
        keys = self.keys.study(study_id)
        fields: dict[str, str | int] = {
            "owner": owner,
            "request": dumps_compact(plan.request),
            "configs": dumps_compact([config.to_json_dict() for config in plan.configs]),
            "children": dumps_compact(children),
            "seeds": plan.seeds,
            "plots": dumps_compact(list(plots)),
        }
        pairs: list[str | int] = [item for field in fields.items() for item in field]
        args: list[str | int] = [
            study_id,
            STUDY_EVENTS_MAXLEN,
            EVENTS_MAXLEN,
            owner,
            max_active,
            len(children),
            len(pairs),
            *pairs,
        ]
        child_keys: list[str] = []
        for child_id, spec, queue in zip(children, plan.children, queues, strict=True):
            job = self.keys.job(child_id)
            child_keys += [job.record, job.events]
            args += [
                child_id,
                queue,
                dumps_compact(spec.to_json_dict()),
                spec.training.epochs,
                dumps_compact(study_child_task(child_id, study_id)),
            ]

        def decode(reply: list[Any]) -> StudyRecord:
            if reply[0] == b"limited":
                raise TooManyActiveJobs(int(reply[1]))
            return StudyRecord.from_fields(_hash(reply[1]))

        indexes = [
            self.keys.jobs,
            self.keys.jobs_with_status(JobStatus.QUEUED),
            self.keys.jobs_with_status(JobStatus.RUNNING),
            self.keys.job_owners,
            self.keys.outbox,
        ]
        return Plan(
            decode,
            script=CREATE_STUDY,
            keys=[
                keys.record,
                keys.events,
                self.keys.studies,
                owned(self.keys.studies, owner),
                *indexes,
                *child_keys,
            ],
            args=args,
        )

    def get_study(
        self, study_id: str, *, seal_after: float | None = SEAL_GRACE_SECONDS
    ) -> Plan[StudyRecord | None]:
        """The study; an unsealed one reconciled with its children.

        A complete study (every child finished) is sealed when no child
        succeeded (there is nothing to draw) or when its last child finished
        `seal_after` seconds ago or more: until then the worker that ran that
        child is drawing its plots and seals it with them. None never seals.
        """
        return self._read(study_id, _Sealing(seal_after))

    def seal_study(
        self, study_id: str, *, series_json: str, plots: Mapping[str, bytes]
    ) -> Plan[StudyRecord | None]:
        """Seal a complete study with its plot series and default PNGs (`name` -> PNG).

        A study a reader sealed meanwhile keeps its summary and still takes the
        series and PNGs; an incomplete one is left as it is.
        """
        return self._read(study_id, _Sealing(0.0, series_json, dict(plots)))

    def claim_study_drawing(self, study_id: str, *, by: str) -> Plan[bool]:
        """True for the first claim to draw an unsealed study's plots (a worker's)."""
        return Plan(
            lambda reply: reply == 1,
            script=CLAIM_DRAWING,
            keys=[self.keys.study(study_id).record],
            args=[by],
        )

    def _read(self, study_id: str, sealing: _Sealing) -> Plan[StudyRecord | None]:
        record = self.keys.study(study_id).record

        def decode(reply: list[Any]) -> StudyRecord | Plan[StudyRecord | None] | None:
            fields = _hash(reply[0])
            if not fields:
                return None
            study = StudyRecord.from_fields(fields)
            if not study.status.finished:
                return self._reconcile(study_id, fields, sealing)
            if sealing.drawn:  # sealed by a reader: still keep what the worker drew
                return self._seal(study, (), sealing)
            return study

        return Plan(decode, commands=[("HGETALL", record)])

    def _reconcile(
        self, study_id: str, fields: Mapping[bytes, bytes], sealing: _Sealing
    ) -> Plan[StudyRecord | None]:
        keys = self.keys.study(study_id)
        ids: list[str] = _json(fields, b"children") or []

        def decode(reply: list[Any]) -> StudyRecord | Plan[StudyRecord | None] | None:
            status = reply[0].decode()
            if status == "missing":
                return None
            if len(reply) == 1:  # sealed meanwhile: read it again
                return self._read(study_id, sealing)
            now = float(reply[1])
            rows = list(zip(ids, reply[2:], strict=True))
            states = [_child_state(child_id, row) for child_id, row in rows]
            live = {**fields, b"status": status.encode()}
            record = StudyRecord.from_fields(live, states)
            record = dataclasses.replace(record, started_at=_earliest(row for _, row in rows))
            if record.complete and sealing.seals(record, [row for _, row in rows], now):
                return self._seal(record, [row for _, row in rows], sealing)
            return record

        child_keys = [self.keys.job(child_id).record for child_id in ids]
        return Plan(
            decode,
            script=RECONCILE,
            keys=[keys.record, keys.seen, keys.events, *child_keys],
            args=[STUDY_EVENTS_MAXLEN, *ids],
        )

    def _seal(
        self, record: StudyRecord, rows: Sequence[Sequence[Any]], sealing: _Sealing
    ) -> Plan[StudyRecord | None]:
        """Finish `record`, whose children have all finished (`rows`: their CHILD_FIELDS);
        with no rows, only store the series and PNGs of a study already sealed."""
        keys = self.keys.study(record.id)
        fields: dict[str, str] = {}
        status, event = record.status, ""
        if rows:
            status, fields = self._final_fields(record, rows)
            event = dumps_compact({"status": status.value, "progress": record.progress})
        pairs: list[str | bytes] = []
        for name, text in fields.items():
            pairs += [name, text]
        for name, png in sealing.plots.items():
            pairs += [plot_field(name), png, plot_etag_field(plot_field(name)), png_etag(png)]
        args: list[str | bytes | int] = [
            record.id,
            self.ttl_seconds,
            STUDY_EVENTS_MAXLEN,
            status.value,
            event,
            sealing.series_json,
            2 * len(fields),
            *pairs,
        ]
        return Plan(
            lambda _: self._read(record.id, _Sealing(None)),
            script=SEAL,
            keys=[*keys.all(), self.keys.studies_expiry],
            args=args,
        )

    def _final_fields(
        self, record: StudyRecord, rows: Sequence[Sequence[Any]]
    ) -> tuple[JobStatus, dict[str, str]]:
        """The sealed study's status and record fields, from its children's final rows."""
        outcomes = [
            ChildOutcome(
                child.id,
                None if child.status == "missing" else JobStatus(child.status),
                orjson.loads(row[5]) if row[5] else None,
            )
            for child, row in zip(record.children, rows, strict=True)
        ]
        fields = {
            "summary": dumps_compact(summarize(record.configs, record.seeds, outcomes)),
            "child_states": dumps_compact([child.to_json_dict() for child in record.children]),
        }
        if (started := _earliest(rows)) is not None:
            fields["started_at"] = f"{started:.6f}"
        if (ended := _latest(rows)) is not None:
            fields["finished_at"] = f"{ended:.6f}"
        return study_status(outcomes), fields

    def list_studies(
        self, *, limit: int = 50, cursor: str | None = None, owner: str | None = None
    ) -> Plan[StudyPage]:
        """Studies newest first (of one owner, or all), `limit` per page from `cursor`,
        as stored: an unsealed one may be behind its children (read it for the news)."""
        index = self.keys.studies if owner is None else owned(self.keys.studies, owner)
        upper = "+" if cursor is None else "(" + decode_cursor(cursor)
        command = ("ZREVRANGEBYLEX", index, upper, "-", "LIMIT", 0, limit + 1)

        def page(reply: list[Any]) -> StudyPage | Plan[StudyPage]:
            ids = [member.decode() for member in reply[0][:limit]]
            next_cursor = encode_cursor(ids[-1]) if len(reply[0]) > limit else None
            if not ids:
                return StudyPage([], None)

            def records(replies: list[Any]) -> StudyPage | Plan[StudyPage]:
                found = {
                    i: StudyRecord.from_fields(_hash(r))
                    for i, r in zip(ids, replies, strict=True)
                    if _hash(r)
                }
                result = StudyPage(list(found.values()), next_cursor)
                gone = [study_id for study_id in ids if study_id not in found]
                if not gone:
                    return result
                # Expired (or deleted meanwhile): drop them from the indexes, then answer.
                drop = [
                    ("ZREM", key, *gone)
                    for key in {index, self.keys.studies, self.keys.studies_expiry}
                ]
                return Plan(lambda _: result, commands=drop)

            commands = [("HGETALL", self.keys.study(study_id).record) for study_id in ids]
            return Plan(records, commands=commands)

        return Plan(page, commands=[command])

    def cancel_study(self, study_id: str) -> Plan[StudyCancel | None]:
        """Flag the study cancelled (once); its children, for the caller to cancel each."""
        keys = self.keys.study(study_id)

        def decode(reply: list[Any]) -> StudyCancel | None:
            if reply[0] == b"missing":
                return None
            return StudyCancel(JobStatus(reply[0].decode()), json.loads(reply[1] or b"[]"))

        return Plan(
            decode,
            script=CANCEL_STUDY,
            keys=[keys.record, keys.events],
            args=[STUDY_EVENTS_MAXLEN],
        )

    def delete_study(self, study_id: str) -> Plan[list[str] | None]:
        """Remove the study's keys; its children (for the caller to delete), None if unknown."""
        keys = self.keys.study(study_id)

        def delete(reply: list[Any]) -> Plan[list[str] | None]:
            owner = reply[0].decode() if reply[0] else ANONYMOUS
            indexes = [self.keys.studies, self.keys.studies_expiry, owned(self.keys.studies, owner)]
            return Plan(
                lambda found: None if found is None else json.loads(found),
                script=DELETE_STUDY,
                keys=[*keys.all(), *indexes],
                args=[study_id],
            )

        return Plan(delete, commands=[("HGET", keys.record, "owner")])

    def study_owner(self, study_id: str) -> Plan[str | None]:
        """Whose API key made the study; None for an unknown study."""
        record = self.keys.study(study_id).record
        return Plan(
            lambda reply: None if reply[0] is None else reply[0].decode(),
            commands=[("HGET", record, "owner")],
        )

    def get_study_plot(self, study_id: str, *, field: str, body: bool = True) -> Plan[StoredPlot]:
        """A stored PNG (only its ETag when not `body`); on a miss, the study's status."""
        keys = self.keys.study(study_id)
        fields = [plot_etag_field(field), field] if body else [plot_etag_field(field)]

        def decode(reply: list[Any]) -> StoredPlot | Plan[StoredPlot]:
            etag, *png = reply[0]
            if etag is not None:
                return StoredPlot(etag=etag.decode(), png=png[0] if png else None)
            return Plan(miss, commands=[("HMGET", keys.record, "status", "plots")])

        def miss(reply: list[Any]) -> StoredPlot:
            status, names = reply[0]
            return StoredPlot(
                status=None if status is None else JobStatus(status.decode()),
                names=tuple(json.loads(names)) if names else (),
            )

        return Plan(decode, commands=[("HMGET", keys.plots, *fields)])

    def put_study_plot(self, study_id: str, *, field: str, png: bytes) -> Plan[str | None]:
        """Cache a rendered PNG beside a finished study; its ETag, or None if not cached."""
        keys = self.keys.study(study_id)
        etag = png_etag(png)
        args: list[str | bytes | int] = [
            field,
            png,
            plot_etag_field(field),
            etag,
            2 * MAX_CACHED_STUDY_PLOTS,
        ]
        return Plan(
            lambda reply: etag if reply == 1 else None,
            script=PUT_PLOT,
            keys=[keys.record, keys.plots],
            args=args,
        )

    def get_study_series(self, study_id: str) -> Plan[bytes | None]:
        """The numbers the study's plots are drawn from (JSON), once stored."""
        return Plan(lambda reply: reply[0], commands=[("GET", self.keys.study(study_id).series)])

    def put_study_series(self, study_id: str, *, series_json: str) -> Plan[bool]:
        """Store the plot numbers of a finished study, once (expiring with it).

        False when they were stored already or the study is not finished: the
        process that stores them first is the one that draws the default plots.
        """
        keys = self.keys.study(study_id)
        return Plan(
            lambda reply: reply == 1,
            script=PUT_SERIES,
            keys=[keys.record, keys.series],
            args=[series_json],
        )

    def read_study_events(
        self, study_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> Plan[list[JobEvent]]:
        """Events after stream id `after`, waiting up to `block_ms` for the first one."""
        command: list[str | int] = ["XREAD", "COUNT", count]
        if block_ms is not None:
            command += ["BLOCK", block_ms]
        command += ["STREAMS", self.keys.study(study_id).events, after]

        def decode(reply: list[Any]) -> list[JobEvent]:
            if not reply[0]:
                return []
            _, entries = reply[0][0]
            events = []
            for entry_id, data in entries:
                item = _hash(data)
                events.append(
                    JobEvent(entry_id.decode(), item[b"type"].decode(), item[b"data"].decode())
                )
            return events

        return Plan(decode, commands=[command], blocking=block_ms is not None)


def _child_state(child_id: str, row: Sequence[Any]) -> ChildState:
    status = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
    epoch = int(row[1]) if row[1] else 0
    epochs = int(row[2]) if row[2] else 0
    return ChildState(child_id, status, epoch, epochs)


def _earliest(rows: Iterable[Sequence[Any]]) -> float | None:
    """When the first child started (rows are CHILD_FIELDS)."""
    times = [value for row in rows if (value := _number(row[3])) is not None]
    return min(times) if times else None


def _latest(rows: Iterable[Sequence[Any]]) -> float | None:
    """When the last child finished."""
    times = [value for row in rows if (value := _number(row[4])) is not None]
    return max(times) if times else None


@dataclass(frozen=True, slots=True)
class _Sealing:
    """How a read treats a complete study: seal after `seal_after` seconds (None: never),
    with the series and PNGs a worker drew (`drawn`)."""

    seal_after: float | None
    series_json: str = ""
    plots: dict[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def drawn(self) -> bool:
        return bool(self.series_json)

    def seals(self, record: StudyRecord, rows: Sequence[Sequence[Any]], now: float) -> bool:
        if self.seal_after is None:
            return False
        if self.drawn or record.progress["succeeded"] == 0:
            return True  # nothing (more) to draw
        last = _latest(rows)
        return last is None or now - last >= self.seal_after


def study_plans_from_settings(settings: Settings) -> StudyPlans:
    """The study plans for `settings`' namespace; a study lives as long as a job."""
    return StudyPlans(Keys(settings.namespace), ttl_seconds=settings.job_ttl_seconds)


# ---------------------------------------------------------------------- executors


def _sync(
    build: Callable[Concatenate[StudyPlans, P], Plan[T]],
) -> Callable[Concatenate[StudyStore, P], T]:
    def operation(self: StudyStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(self.study_plans, *args, **kwargs))

    operation.__name__ = build.__name__
    operation.__doc__ = build.__doc__
    return operation


def _async(
    build: Callable[Concatenate[StudyPlans, P], Plan[T]],
) -> Callable[Concatenate[AsyncStudyStore, P], Coroutine[Any, Any, T]]:
    async def operation(self: AsyncStudyStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(self.study_plans, *args, **kwargs))

    operation.__name__ = build.__name__
    operation.__doc__ = build.__doc__
    return operation


class StudyStore(JobStore):
    """The job store plus studies, over a blocking redis-py client (worker, tests)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        super().__init__(client, plans_from_settings(settings))
        self.study_plans = study_plans_from_settings(settings)
        for script in STUDY_SCRIPTS:
            self._scripts[script.name] = client.register_script(script.source)

    @classmethod
    def from_settings(cls, settings: Settings) -> StudyStore:
        """A store on `settings.redis_url` for `settings.namespace`."""
        return cls(redis.Redis.from_url(settings.redis_url), settings)

    def cancel(self, study_id: str) -> StudyCancel | None:
        """Cancel the study: flag it, then cancel every child still queued or running."""
        outcome = self.cancel_study(study_id)
        if outcome is not None and not outcome.before.finished:
            for child_id in outcome.children:
                self.request_cancel(child_id)
        return outcome

    def delete_with_children(self, study_id: str) -> bool:
        """Delete the study and every child (a running child stops after its epoch)."""
        children = self.delete_study(study_id)
        for child_id in children or ():
            self.delete(child_id)
        return children is not None

    create_study = _sync(StudyPlans.create_study)
    get_study = _sync(StudyPlans.get_study)
    list_studies = _sync(StudyPlans.list_studies)
    cancel_study = _sync(StudyPlans.cancel_study)
    delete_study = _sync(StudyPlans.delete_study)
    get_study_plot = _sync(StudyPlans.get_study_plot)
    put_study_plot = _sync(StudyPlans.put_study_plot)
    get_study_series = _sync(StudyPlans.get_study_series)
    put_study_series = _sync(StudyPlans.put_study_series)
    read_study_events = _sync(StudyPlans.read_study_events)
    claim_study_drawing = _sync(StudyPlans.claim_study_drawing)
    study_owner = _sync(StudyPlans.study_owner)
    seal_study = _sync(StudyPlans.seal_study)


class AsyncStudyStore(AsyncJobStore):
    """The async job store plus studies (the API), on the same connections as a job store."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        multiplexed: MultiplexedRedis,
        settings: Settings,
    ) -> None:
        super().__init__(client, plans_from_settings(settings), multiplexed)
        self.study_plans = study_plans_from_settings(settings)
        for script in STUDY_SCRIPTS:
            self._sha[script.name] = _sha1(script.source)

    @classmethod
    def sharing(cls, store: AsyncJobStore, settings: Settings) -> AsyncStudyStore:
        """A study store on `store`'s connections (closing either closes both)."""
        return cls(store.client, store.multiplexed, settings)

    create_study = _async(StudyPlans.create_study)
    get_study = _async(StudyPlans.get_study)
    list_studies = _async(StudyPlans.list_studies)
    cancel_study = _async(StudyPlans.cancel_study)
    delete_study = _async(StudyPlans.delete_study)
    get_study_plot = _async(StudyPlans.get_study_plot)
    put_study_plot = _async(StudyPlans.put_study_plot)
    get_study_series = _async(StudyPlans.get_study_series)
    put_study_series = _async(StudyPlans.put_study_series)
    read_study_events = _async(StudyPlans.read_study_events)
    claim_study_drawing = _async(StudyPlans.claim_study_drawing)
    study_owner = _async(StudyPlans.study_owner)
    seal_study = _async(StudyPlans.seal_study)


def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()
