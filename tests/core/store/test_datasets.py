"""Uploaded datasets in the store: one copy per upload, the owner's limit, listing, and no
deletion while a queued or running job uses one."""

from __future__ import annotations

import pytest

from core.experiment.jobs import JobStatus
from core.experiment.spec import ExperimentSpec
from core.store.datasets import TooManyDatasets
from core.store.records import WorkerInfo
from core.store.stores import JobStore

META = {"name": "points", "samples": 4}


def put(store: JobStore, owner: str = "alice", key: str = "k1", most: int = 10):  # type: ignore[no-untyped-def]
    return store.put_dataset(
        owner=owner, meta=META, packed=b"arrays " + key.encode(), dedupe_key=key, max_datasets=most
    )


def test_a_dataset_is_kept_with_its_arrays(isolated_store: JobStore) -> None:
    put_ = put(isolated_store)
    assert put_.new and put_.record.owner == "alice" and put_.record.meta == META
    assert isolated_store.get_dataset(put_.record.id) == put_.record
    assert isolated_store.dataset_data(put_.record.id) == b"arrays k1"
    assert put_.record.to_public()["created_at"] is not None


def test_the_same_upload_is_one_dataset_per_owner(isolated_store: JobStore) -> None:
    first = put(isolated_store)
    again = put(isolated_store)
    other = put(isolated_store, owner="bob")
    assert not again.new and again.record.id == first.record.id
    assert other.new and other.record.id != first.record.id


def test_an_owner_keeps_at_most_its_limit(isolated_store: JobStore) -> None:
    put(isolated_store, key="a", most=2)
    put(isolated_store, key="b", most=2)
    with pytest.raises(TooManyDatasets):
        put(isolated_store, key="c", most=2)
    assert put(isolated_store, owner="bob", key="c", most=2).new  # others are not held back
    assert put(isolated_store, key="a", most=2).new is False  # a copy takes no room


def test_listing_is_newest_first_and_per_owner(isolated_store: JobStore) -> None:
    ids = [put(isolated_store, key=k).record.id for k in "abc"]
    put(isolated_store, owner="bob", key="z")
    first = isolated_store.list_datasets(owner="alice", limit=2)
    assert [r.id for r in first.items] == ids[:0:-1] and first.next_cursor
    rest = isolated_store.list_datasets(owner="alice", limit=2, cursor=first.next_cursor)
    assert [r.id for r in rest.items] == ids[:1] and rest.next_cursor is None


def test_deleting_waits_for_the_jobs_that_use_it(isolated_store: JobStore) -> None:
    dataset = put(isolated_store).record.id
    spec = ExperimentSpec.model_validate({"seed": 1, "training": {"epochs": 1}})
    job = isolated_store.create(spec=spec, queue="cpu", owner="alice").record.id
    assert isolated_store.use_dataset(dataset, [job])

    refused = isolated_store.delete_dataset(dataset)
    assert not refused.deleted and refused.busy == [job]
    worker = WorkerInfo(hostname="w@test", device="cpu", device_name="CPU", tensorflow="0")
    isolated_store.mark_running(job, worker=worker, max_deliveries=3)
    assert isolated_store.delete_dataset(dataset).busy == [job]
    isolated_store.mark_failed(job, error_type="X", message="x")
    assert isolated_store.get(job).status is JobStatus.FAILED  # type: ignore[union-attr]

    assert isolated_store.delete_dataset(dataset).deleted
    assert isolated_store.get_dataset(dataset) is None
    assert isolated_store.dataset_data(dataset) is None
    assert isolated_store.delete_dataset(dataset).missing
    assert not isolated_store.use_dataset(dataset, [job])
    assert put(isolated_store).new  # its content hash left with it
