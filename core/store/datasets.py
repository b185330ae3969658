"""Operations: an owner's uploaded datasets, kept beside the job records.

    put_dataset(*, owner, meta, packed, dedupe_key, max_datasets) -> DatasetPut
        Keep a dataset (its description and its packed arrays), or find the owner's copy
        of the same upload; raises TooManyDatasets at the owner's limit.
    get_dataset(dataset_id) -> DatasetRecord | None
    list_datasets(*, owner, limit, cursor) -> Page[DatasetRecord]   newest first
    dataset_data(dataset_id) -> bytes | None      the packed arrays, for a worker
    use_dataset(dataset_id, job_ids) -> bool      name jobs that train on it (False: gone)
    delete_dataset(dataset_id) -> DatasetDeletion

A dataset lives until its owner deletes it; the owner's count is bounded
(`Settings.datasets_per_owner`), each one's size by the upload limits. The
store keeps the description (`meta`) as the caller made it: it does not read
datasets itself (core.datasets does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from core.experiment.jobs import new_job_id
from core.store.keys import owned
from core.store.pages import Page, newest_first
from core.store.plans import Arg, Plan, Plans, applied
from core.store.records import fields_of, iso_time, number
from core.store.scripts.datasets import DELETE_DATASET, PUT_DATASET, USE_DATASET


class TooManyDatasets(Exception):  # noqa: N818 - reads as the event it reports
    """The owner already keeps as many datasets as it may."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} datasets already kept")
        self.count = count


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """An uploaded dataset as the store keeps it: its owner and its description."""

    id: str
    owner: str
    meta: dict[str, Any]
    created_at: float | None

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> DatasetRecord:
        return cls(
            id=fields[b"id"].decode(),
            owner=fields[b"owner"].decode(),
            meta=orjson.loads(fields[b"meta"]),
            created_at=number(fields.get(b"created_at")),
        )

    def to_public(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": iso_time(self.created_at), **self.meta}


@dataclass(frozen=True, slots=True)
class DatasetPut:
    """What `put_dataset` kept: the record, and whether it is new (False: the same upload
    was already kept)."""

    record: DatasetRecord
    new: bool


@dataclass(frozen=True, slots=True)
class DatasetDeletion:
    """What `delete_dataset` did: `deleted`, or nothing when it was `missing` or jobs still
    queued or running use it (`busy`, their ids)."""

    deleted: bool
    missing: bool = False
    busy: list[str] = field(default_factory=list)


class DatasetPlans(Plans):
    """An owner's uploaded datasets, as plans."""

    def put_dataset(
        self,
        *,
        owner: str,
        meta: dict[str, Any],
        packed: bytes,
        dedupe_key: str,
        max_datasets: int,
    ) -> Plan[DatasetPut]:
        """Keep a dataset for `owner`, or find its copy of the same upload (`dedupe_key`).

        Raises TooManyDatasets when the owner keeps `max_datasets` already.
        """
        dataset_id = new_job_id()
        keys = self.keys.dataset(dataset_id)
        script_keys = [keys.record, keys.data, self.keys.datasets, self.keys.dataset_hashes]
        args: list[Arg] = [dataset_id, owner, orjson.dumps(meta), packed, dedupe_key, max_datasets]

        def decode(reply: list[bytes]) -> Plan[DatasetPut]:
            outcome = reply[0]
            if outcome == b"full":
                raise TooManyDatasets(int(reply[1]))
            found = reply[1].decode()
            return self._read_put(found, new=outcome == b"new")

        return Plan(decode, script=PUT_DATASET, keys=script_keys, args=args)

    def _read_put(self, dataset_id: str, *, new: bool) -> Plan[DatasetPut]:
        def decode(reply: list[Any]) -> DatasetPut:
            return DatasetPut(DatasetRecord.from_fields(dict(fields_of(reply[0]))), new)

        return Plan(decode, commands=[("HGETALL", self.keys.dataset(dataset_id).record)])

    def get_dataset(self, dataset_id: str) -> Plan[DatasetRecord | None]:
        """The dataset's record, or None when there is none."""

        def decode(reply: list[Any]) -> DatasetRecord | None:
            fields = dict(fields_of(reply[0]))
            return DatasetRecord.from_fields(fields) if fields else None

        return Plan(decode, commands=[("HGETALL", self.keys.dataset(dataset_id).record)])

    def list_datasets(
        self, *, owner: str, limit: int = 50, cursor: str | None = None
    ) -> Plan[Page[DatasetRecord]]:
        """The owner's datasets newest first, `limit` per page from `cursor`."""
        index = owned(self.keys.datasets, owner)
        return newest_first(index, limit=limit, cursor=cursor, read=self._dataset_page)

    def _dataset_page(self, ids: list[str], next_cursor: str | None) -> Plan[Page[DatasetRecord]]:
        def decode(replies: list[Any]) -> Page[DatasetRecord]:
            found = (dict(fields_of(reply)) for reply in replies)
            records = [DatasetRecord.from_fields(fields) for fields in found if fields]
            return Page(records, next_cursor)

        commands = [("HGETALL", self.keys.dataset(dataset_id).record) for dataset_id in ids]
        return Plan(decode, commands=commands)

    def dataset_data(self, dataset_id: str) -> Plan[bytes | None]:
        """The dataset's packed arrays, or None once it was deleted."""

        def decode(reply: list[bytes | None]) -> bytes | None:
            return reply[0]

        return Plan(decode, commands=[("GET", self.keys.dataset(dataset_id).data)])

    def use_dataset(self, dataset_id: str, job_ids: list[str]) -> Plan[bool]:
        """Name `job_ids` as jobs that train on the dataset, so it is not deleted while one
        is queued or running; False when it was deleted already."""
        keys = self.keys.dataset(dataset_id)
        return Plan(applied, script=USE_DATASET, keys=[keys.record, keys.jobs], args=job_ids)

    def delete_dataset(self, dataset_id: str) -> Plan[DatasetDeletion]:
        """Delete the dataset unless a queued or running job uses it."""
        keys = self.keys.dataset(dataset_id)
        script_keys = [
            keys.record,
            keys.data,
            keys.jobs,
            self.keys.datasets,
            self.keys.dataset_hashes,
        ]
        args = [dataset_id, self.keys.job_record_prefix()]

        def decode(reply: list[bytes]) -> DatasetDeletion:
            if reply[0] == b"busy":
                return DatasetDeletion(False, busy=[job.decode() for job in reply[1:]])
            return DatasetDeletion(reply[0] == b"deleted", missing=reply[0] == b"missing")

        return Plan(decode, script=DELETE_DATASET, keys=script_keys, args=args)
