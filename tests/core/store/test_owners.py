"""Owners in the store: per-owner indexes kept by the transitions, limits, scoped keys."""

from __future__ import annotations

import time

import pytest

from core.access.api_keys import ANONYMOUS
from core.experiment.jobs import JobStatus, Summary
from core.experiment.spec import ExperimentSpec
from core.store.admission import TooManyActiveJobs
from core.store.keys import owned
from core.store.records import WorkerInfo
from core.store.stores import JobStore

WORKER = WorkerInfo(hostname="w@test", device="cpu", device_name="CPU", tensorflow="0")
LIMITS = {"per_minute": 1000, "max_active": 1000}


def spec() -> ExperimentSpec:
    return ExperimentSpec.model_validate({"seed": 1, "training": {"epochs": 2}})


def ids(store: JobStore, **query: object) -> list[str]:
    return [record.id for record in store.list_jobs(limit=200, **query).items]  # type: ignore[arg-type]


def test_jobs_carry_their_owner(isolated_store: JobStore) -> None:
    mine = isolated_store.create(spec=spec(), queue="cpu", owner="alice").record
    default = isolated_store.create(spec=spec(), queue="cpu").record

    assert mine.owner == "alice" and default.owner == ANONYMOUS
    assert isolated_store.owner_of(mine.id) == "alice"
    assert isolated_store.owner_of(default.id) == ANONYMOUS
    assert isolated_store.owner_of("01ARZ3NDEKTSV4RRFFQ69G5FAV") is None


def test_a_record_is_read_for_its_owner_alone(isolated_store: JobStore) -> None:
    mine = isolated_store.create(spec=spec(), queue="cpu", owner="alice").record
    default = isolated_store.create(spec=spec(), queue="cpu").record

    assert isolated_store.get_owned(mine.id, owner="alice") == isolated_store.get(mine.id)
    assert isolated_store.get_owned(default.id, owner=ANONYMOUS) is not None
    assert isolated_store.get_owned(mine.id, owner="bob") is None
    assert isolated_store.get_owned(default.id, owner="bob") is None
    assert isolated_store.get_owned("01ARZ3NDEKTSV4RRFFQ69G5FAV", owner="alice") is None


def test_listing_by_owner_sees_only_its_jobs(isolated_store: JobStore) -> None:
    alice = [isolated_store.create(spec=spec(), queue="cpu", owner="alice").record.id for _ in "ab"]
    bob = isolated_store.create(spec=spec(), queue="cpu", owner="bob").record.id

    assert ids(isolated_store, owner="alice") == alice[::-1]
    assert ids(isolated_store, owner="bob") == [bob]
    assert set(ids(isolated_store)) == {*alice, bob}  # no owner: every job
    assert ids(isolated_store, owner="carol") == []


def test_transitions_move_jobs_between_the_owners_status_indexes(
    isolated_store: JobStore,
) -> None:
    store = isolated_store
    job_id = store.create(spec=spec(), queue="cpu", owner="alice").record.id
    assert ids(store, owner="alice", status=JobStatus.QUEUED) == [job_id]

    store.mark_running(job_id, worker=WORKER, max_deliveries=3)
    assert ids(store, owner="alice", status=JobStatus.QUEUED) == []
    assert ids(store, owner="alice", status=JobStatus.RUNNING) == [job_id]

    store.mark_succeeded(job_id, summary=Summary(0.1, 1.0), result_json="{}", plots={})
    assert ids(store, owner="alice", status=JobStatus.RUNNING) == []
    assert ids(store, owner="alice", status=JobStatus.SUCCEEDED) == [job_id]
    assert ids(store, owner="bob", status=JobStatus.SUCCEEDED) == []


def test_delete_leaves_every_owner_index(isolated_store: JobStore) -> None:
    store = isolated_store
    job_id = store.create(spec=spec(), queue="cpu", owner="alice").record.id
    assert store.delete(job_id)

    keys = store.plans.keys
    for index in (keys.jobs, *(keys.jobs_with_status(status) for status in JobStatus)):
        assert store.client.zcard(owned(index, "alice")) == 0
    assert store.client.hlen(keys.job_owners) == 0


def test_expired_jobs_leave_their_owners_indexes(isolated_store: JobStore) -> None:
    store = isolated_store
    job_id = store.create(spec=spec(), queue="cpu", owner="alice").record.id
    store.mark_cancelled(job_id)
    # As if its TTL had passed: its keys gone, its expiry time behind us.
    keys = store.plans.keys
    store.client.delete(*keys.job(job_id).all())
    store.client.zadd(keys.expiry, {job_id: 1})

    assert store.prune_expired() == 1
    assert ids(store, owner="alice") == []
    assert ids(store, owner="alice", status=JobStatus.CANCELLED) == []
    assert store.client.hexists(keys.job_owners, job_id) is False


def test_idempotency_keys_are_scoped_to_their_owner(isolated_store: JobStore) -> None:
    store = isolated_store
    alice = store.create(spec=spec(), queue="cpu", idempotency_key="k", owner="alice")
    bob = store.create(spec=spec(), queue="cpu", idempotency_key="k", owner="bob")
    again = store.create(spec=spec(), queue="cpu", idempotency_key="k", owner="alice")

    assert bob.new and bob.record.id != alice.record.id
    assert not again.new and again.record.id == alice.record.id


# ------------------------------------------------------------------------ limits


def test_create_refuses_past_the_owners_active_limit(isolated_store: JobStore) -> None:
    store = isolated_store
    first = store.create(spec=spec(), queue="cpu", owner="alice", max_active=2).record.id
    store.create(spec=spec(), queue="cpu", owner="alice", max_active=2)

    with pytest.raises(TooManyActiveJobs) as caught:
        store.create(spec=spec(), queue="cpu", owner="alice", max_active=2)
    assert caught.value.active == 2
    store.create(spec=spec(), queue="cpu", owner="bob", max_active=2)  # another owner's count

    store.mark_running(first, worker=WORKER, max_deliveries=3)  # running still counts
    with pytest.raises(TooManyActiveJobs):
        store.create(spec=spec(), queue="cpu", owner="alice", max_active=2)
    store.mark_failed(first, error_type="Boom", message="boom")
    store.create(spec=spec(), queue="cpu", owner="alice", max_active=2)


def test_admit_counts_active_jobs_with_the_ones_a_request_adds(isolated_store: JobStore) -> None:
    store = isolated_store
    job_id = store.create(spec=spec(), queue="cpu", owner="alice").record.id

    assert store.admit("alice", jobs=2, per_minute=100, max_active=3) is None
    refusal = store.admit("alice", jobs=3, per_minute=100, max_active=3)
    assert refusal is not None and refusal.limit == "max_active_jobs" and refusal.active == 1
    assert refusal.retry_after > 0

    store.request_cancel(job_id)
    assert store.admit("alice", jobs=3, per_minute=100, max_active=3) is None


def test_admit_limits_submissions_in_a_sliding_window(isolated_store: JobStore) -> None:
    store = isolated_store
    for _ in range(3):
        assert store.admit("alice", per_minute=3, max_active=10) is None

    refusal = store.admit("alice", per_minute=3, max_active=10)
    assert refusal is not None and refusal.limit == "submissions_per_minute"
    assert 0 < refusal.retry_after <= 60
    assert store.admit("bob", per_minute=3, max_active=10) is None  # its own window

    # A short window shows a slot freeing as its oldest submission leaves it.
    for _ in range(2):
        assert store.admit("carol", per_minute=2, max_active=10, window=0.3) is None
    wait = store.admit("carol", per_minute=2, max_active=10, window=0.3)
    assert wait is not None and wait.retry_after <= 0.3
    time.sleep(wait.retry_after + 0.05)
    assert store.admit("carol", per_minute=2, max_active=10, window=0.3) is None
