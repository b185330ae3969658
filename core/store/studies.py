"""Studies in the store: a record beside its children, its state derived from theirs.

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

The study stores (core.store.stores) add these operations to the job store's:

    create_study(*, plan: StudyPlan, queues: [queue], plots, owner=ANONYMOUS, max_active=0)
        -> StudyRecord       The study and its children (queued jobs), in one step
    get_study(study_id, *, owner=None) -> StudyRecord | None   (reconciles; seals when complete)
    seal_study(study_id, *, series_json, plots) -> StudyRecord | None
    claim_study_drawing(study_id, *, by) -> bool
    list_studies(*, limit=50, cursor=None, owner=None) -> StudyPage
    cancel_study(study_id) -> StudyCancel | None        (the study's flag; not its children)
    delete_study(study_id) -> list[str] | None          (the study's keys; not its children)
    study_owner(study_id) -> str | None
    get_study_plot(study_id, *, field, body=True) -> StoredPlot
    put_study_plot(study_id, *, field, png) -> str | None
    get_study_series(study_id) -> bytes | None
    put_study_series(study_id, *, series_json) -> bool
    read_study_events(study_id, *, after="0", block_ms=None, count=100) -> list[JobEvent]
    link_remedy_study(study_id, *, source) -> bool   (on the record of the run it proves)

Example:
    >>> store = StudyStore.from_settings(get_settings())
    >>> record = store.get_study(study_id)
    >>> record.status, record.progress["succeeded"]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from core.access.api_keys import ANONYMOUS
from core.experiment.grouping import (
    MAX_MEMBERS,
    ensemble_groups,
    graph_signature,
    group_signature,
)
from core.experiment.jobs import JobStatus, new_job_id
from core.experiment.remedy_studies import remedy_summary
from core.experiment.studies import StudyPlan
from core.experiment.study_summary import ChildOutcome, study_status, summarize
from core.queue.tasks import study_child_task, study_group_task
from core.store.admission import TooManyActiveJobs
from core.store.events import EVENTS_MAXLEN, STUDY_EVENTS_MAXLEN, JobEvent, read_stream
from core.store.jobs import owner_of_record
from core.store.keys import owned
from core.store.pages import Page, newest_first
from core.store.plans import Plan, Plans, applied
from core.store.plots import StoredPlot, cache_plot, default_plot_fields, read_plot
from core.store.records import ChildState, StudyRecord, dumps_compact, fields_of, number
from core.store.scripts.jobs import READ_OWNED
from core.store.scripts.studies import (
    CANCEL_STUDY,
    CLAIM_DRAWING,
    CREATE_STUDY,
    DELETE_STUDY,
    LINK_REMEDY_STUDY,
    PUT_SERIES,
    RECONCILE,
    SEAL,
)

StudyPage = Page[StudyRecord]

# A complete study waits this long for the worker drawing its plots before a reader
# seals it without them (they are then drawn on request): a worker that dies drawing
# leaves a study that finishes anyway.
SEAL_GRACE_SECONDS = 15.0
# A run's record links this many of the studies that prove its prescriptions, the newest.
MAX_REMEDY_LINKS = 20
CHILD_FIELDS = ("status", "epoch", "epochs", "started_at", "finished_at", "summary")


@dataclass(frozen=True, slots=True)
class StudyCancel:
    """What a study cancel found: its status before, and its children to cancel."""

    before: JobStatus
    children: list[str]


def _child_state(child_id: str, row: Sequence[Any]) -> ChildState:
    status = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
    epoch = int(row[1]) if row[1] else 0
    epochs = int(row[2]) if row[2] else 0
    return ChildState(child_id, status, epoch, epochs)


def _earliest(rows: Iterable[Sequence[Any]]) -> float | None:
    """When the first child started (rows are CHILD_FIELDS)."""
    times = [value for row in rows if (value := number(row[3])) is not None]
    return min(times) if times else None


def _latest(rows: Iterable[Sequence[Any]]) -> float | None:
    """When the last child finished."""
    times = [value for row in rows if (value := number(row[4])) is not None]
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


class StudyPlans(Plans):
    """Every study operation as a pure function from arguments to a `Plan`."""

    def create_study(
        self,
        *,
        plan: StudyPlan,
        queues: Sequence[str],
        plots: Sequence[str],
        owner: str = ANONYMOUS,
        max_active: int = 0,
        members: int = MAX_MEMBERS,
    ) -> Plan[StudyRecord]:
        """A queued study of `owner` and its children, one queued job per child spec of
        `plan` on the queue `queues` names for it, all in one step.

        Each child's task trains it and then updates the study. Children that share a
        graph (core.experiment.grouping), at most `members` of them, wait on their
        queue's dispatcher as one unit, which a worker trains side by side; the others
        each alone. With `max_active` > 0, raises TooManyActiveJobs (and makes nothing)
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
            self.keys.dispatch_base,
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
                graph_signature(spec),
            ]
        for group in ensemble_groups(plan.children, max_members=members):
            ids = [children[index] for index in group]
            task = (
                study_group_task(ids, study_id)
                if len(ids) > 1
                else study_child_task(ids[0], study_id)
            )
            graph = group_signature([plan.children[index] for index in group])
            args += [dumps_compact(task), ",".join(map(str, group)), graph]

        def decode(reply: list[Any]) -> StudyRecord:
            if reply[0] == b"limited":
                raise TooManyActiveJobs(int(reply[1]))
            return StudyRecord.from_fields(fields_of(reply[1]))

        indexes = [
            self.keys.jobs,
            self.keys.jobs_with_status(JobStatus.QUEUED),
            self.keys.jobs_with_status(JobStatus.RUNNING),
            self.keys.job_owners,
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
        self,
        study_id: str,
        *,
        seal_after: float | None = SEAL_GRACE_SECONDS,
        owner: str | None = None,
    ) -> Plan[StudyRecord | None]:
        """The study; an unsealed one reconciled with its children.

        A complete study (every child finished) is sealed when no child
        succeeded (there is nothing to draw) or when its last child finished
        `seal_after` seconds ago or more: until then the worker that ran that
        child is drawing its plots and seals it with them. None never seals.

        With `owner`, only that owner's study: None, by the same single read and
        before any reconciling, for an unknown study and for another owner's.
        """
        return self._read(study_id, _Sealing(seal_after), owner=owner)

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
            applied,
            script=CLAIM_DRAWING,
            keys=[self.keys.study(study_id).record],
            args=[by],
        )

    def _read(
        self, study_id: str, sealing: _Sealing, *, owner: str | None = None
    ) -> Plan[StudyRecord | None]:
        record = self.keys.study(study_id).record

        def decode(reply: Any) -> StudyRecord | Plan[StudyRecord | None] | None:
            fields = fields_of(reply or ())
            if not fields:
                return None
            study = StudyRecord.from_fields(fields)
            if not study.status.finished:
                return self._reconcile(study_id, fields, sealing)
            if sealing.drawn:  # sealed by a reader: still keep what the worker drew
                return self._seal(study, (), sealing)
            return study

        if owner is not None:
            return Plan(decode, script=READ_OWNED, keys=[record], args=[owner, ANONYMOUS])
        return Plan(lambda replies: decode(replies[0]), commands=[("HGETALL", record)])

    def _reconcile(
        self, study_id: str, fields: Mapping[bytes, bytes], sealing: _Sealing
    ) -> Plan[StudyRecord | None]:
        keys = self.keys.study(study_id)
        ids: list[str] = orjson.loads(fields.get(b"children") or b"[]")

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
        pairs += default_plot_fields(sealing.plots)
        args: list[str | bytes | int] = [
            record.id,
            self.job_ttl_seconds,
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
        summary = summarize(record.configs, record.seeds, outcomes)
        remedies = record.request.get("remedies")
        if remedies is not None:  # a study that proves a run's prescriptions
            summary["remedies"] = remedy_summary(record.configs, record.seeds, outcomes, remedies)
        fields = {
            "summary": dumps_compact(summary),
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

        def read(ids: list[str], next_cursor: str | None) -> Plan[StudyPage]:
            def records(replies: list[Any]) -> StudyPage | Plan[StudyPage]:
                found = {
                    study_id: StudyRecord.from_fields(fields)
                    for study_id, reply in zip(ids, replies, strict=True)
                    if (fields := fields_of(reply))
                }
                page = Page(list(found.values()), next_cursor)
                gone = [study_id for study_id in ids if study_id not in found]
                if not gone:
                    return page
                # Expired (or deleted meanwhile): drop them from the indexes, then answer.
                drop = [
                    ("ZREM", key, *gone)
                    for key in {index, self.keys.studies, self.keys.studies_expiry}
                ]
                return Plan(lambda _: page, commands=drop)

            commands = [("HGETALL", self.keys.study(study_id).record) for study_id in ids]
            return Plan(records, commands=commands)

        return newest_first(index, limit=limit, cursor=cursor, read=read)

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
        return owner_of_record(self.keys.study(study_id).record)

    def get_study_plot(self, study_id: str, *, field: str, body: bool = True) -> Plan[StoredPlot]:
        """A stored PNG (only its ETag when not `body`); on a miss, the study's status."""
        return read_plot(self.keys.study(study_id), field=field, body=body)

    def put_study_plot(self, study_id: str, *, field: str, png: bytes) -> Plan[str | None]:
        """Cache a rendered PNG beside a finished study; its ETag, or None if not cached."""
        return cache_plot(
            self.keys.study(study_id),
            self.keys,
            field=field,
            png=png,
            budget=self.render_cache_bytes,
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
            applied,
            script=PUT_SERIES,
            keys=[keys.record, keys.series],
            args=[series_json],
        )

    def read_study_events(
        self, study_id: str, *, after: str = "0", block_ms: int | None = None, count: int = 100
    ) -> Plan[list[JobEvent]]:
        """Events after stream id `after`, waiting up to `block_ms` for the first one."""
        stream = self.keys.study(study_id).events
        return read_stream(stream, after=after, block_ms=block_ms, count=count)

    def link_remedy_study(self, study_id: str, *, source: Mapping[str, Any]) -> Plan[bool]:
        """Link study `study_id` from the record of the run whose prescriptions it proves
        (`source`: `{"kind": "experiment", "experiment": id}` or `{"kind": "study_config",
        "study": id, "config": i}`), keeping the newest MAX_REMEDY_LINKS; False when that
        record is gone."""
        record = (
            self.keys.job(source["experiment"]).record
            if source["kind"] == "experiment"
            else self.keys.study(source["study"]).record
        )
        return Plan(
            applied,
            script=LINK_REMEDY_STUDY,
            keys=[record],
            args=[study_id, MAX_REMEDY_LINKS],
        )
