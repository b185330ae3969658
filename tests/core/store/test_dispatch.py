"""The dispatcher in the store: whose unit a worker claims next, and which one.

Workers here are hostnames that claim (and beat, where it matters); the real ones,
with the pool and Celery, are in tests/worker/test_dispatch.py.
"""

from __future__ import annotations

import pytest

from core.experiment.grouping import graph_signature
from core.experiment.jobs import JobStatus
from core.experiment.spec import ExperimentSpec
from core.store.dispatch import Claim, warm_graph
from core.store.records import WorkerInfo
from core.store.stores import JobStore

QUEUE = "cpu"
W1, W2 = "w1@test", "w2@test"
TANH = {"seed": 1, "model": {"activation": "tanh"}, "training": {"epochs": 3}}
RELU = {"seed": 1, "model": {"activation": "relu"}, "training": {"epochs": 3}}


def create(store: JobStore, owner: str, body: dict[str, object] = TANH) -> str:
    spec = ExperimentSpec.model_validate(body)
    return store.create(spec=spec, queue=QUEUE, owner=owner).record.id


def warm(body: dict[str, object]) -> str:
    return warm_graph(graph_signature(ExperimentSpec.model_validate(body)), 1)


def claimed(claim: Claim | None) -> str | None:
    return None if claim is None else claim.message_id


def start(store: JobStore, job_id: str, hostname: str = W1) -> None:
    worker = WorkerInfo(hostname, "cpu", "CPU", "")
    assert store.mark_running(job_id, worker=worker, max_deliveries=3) is not None


def test_owners_take_turns_however_much_one_of_them_queued(isolated_store: JobStore) -> None:
    flood = [create(isolated_store, "alice") for _ in range(4)]
    bobs = create(isolated_store, "bob")

    order = [claimed(isolated_store.claim(queue=QUEUE, hostname=W1)) for _ in range(3)]

    assert order == [flood[0], bobs, flood[1]]


def test_the_owner_with_the_fewest_jobs_running_goes_first(isolated_store: JobStore) -> None:
    for _ in range(2):
        start(isolated_store, create(isolated_store, "alice"))
    start(isolated_store, create(isolated_store, "bob"))
    alices = create(isolated_store, "alice")
    bobs = create(isolated_store, "bob")

    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W1)) == bobs
    # Claimed counts as running: now one each, and bob's turn came last.
    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W1)) == alices


def test_an_owner_at_its_running_cap_waits_until_a_job_of_it_ends(
    isolated_store: JobStore,
) -> None:
    first = create(isolated_store, "alice")
    second = create(isolated_store, "alice")
    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W1, max_running=1)) == first

    assert isolated_store.claim(queue=QUEUE, hostname=W2, max_running=1) is None
    start(isolated_store, first)
    assert isolated_store.claim(queue=QUEUE, hostname=W2, max_running=1) is None
    isolated_store.mark_failed(first, error_type="X", message="x")
    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W2, max_running=1)) == second


def test_a_worker_takes_a_unit_whose_graph_it_holds_warm_first(isolated_store: JobStore) -> None:
    cold = create(isolated_store, "alice", RELU)
    hot = create(isolated_store, "alice", TANH)

    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W1, warm=[warm(TANH)])) == hot
    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W1, warm=[warm(TANH)])) == cold


def test_a_young_unit_is_left_to_an_idle_worker_that_holds_it_warm(
    isolated_store: JobStore,
) -> None:
    for host in (W1, W2):
        isolated_store.record_heartbeat(queue=QUEUE, hostname=host)
    assert isolated_store.claim(queue=QUEUE, hostname=W1, warm=[warm(TANH)]) is None  # idle
    job_id = create(isolated_store, "alice", TANH)

    assert isolated_store.claim(queue=QUEUE, hostname=W2) is None
    # The cold worker woke the warm one, which takes it.
    assert isolated_store.wait_for_work(queues=[], hostname=W1, seconds=0.1)
    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W1, warm=[warm(TANH)])) == job_id


@pytest.mark.parametrize("why", ["waited long enough", "its warm worker went silent"])
def test_a_unit_nobody_takes_warm_goes_to_any_worker(isolated_store: JobStore, why: str) -> None:
    if why == "its warm worker went silent":  # idle, but no heartbeat
        assert isolated_store.claim(queue=QUEUE, hostname=W1, warm=[warm(TANH)]) is None
        wait = 10.0
    else:
        isolated_store.record_heartbeat(queue=QUEUE, hostname=W1)
        assert isolated_store.claim(queue=QUEUE, hostname=W1, warm=[warm(TANH)]) is None
        wait = 0.0
    job_id = create(isolated_store, "alice", TANH)

    claim = isolated_store.claim(queue=QUEUE, hostname=W2, warm_wait=wait)

    assert claimed(claim) == job_id


def test_a_cancelled_or_deleted_job_leaves_the_queue_and_no_worker_gets_it(
    isolated_store: JobStore,
) -> None:
    cancelled, deleted, kept = (create(isolated_store, "alice") for _ in range(3))
    assert isolated_store.waiting(queue=QUEUE) == [cancelled, deleted, kept]

    isolated_store.request_cancel(cancelled)
    isolated_store.delete(deleted)

    assert isolated_store.waiting(queue=QUEUE) == [kept]
    assert isolated_store.any_waiting(queue=QUEUE)
    assert isolated_store.metrics(queues=[QUEUE]).queue_depths == {QUEUE: 1}
    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W1)) == kept
    assert not isolated_store.any_waiting(queue=QUEUE)
    assert isolated_store.claim(queue=QUEUE, hostname=W1) is None


def test_a_job_queued_again_goes_first_of_its_owners(isolated_store: JobStore) -> None:
    lost = create(isolated_store, "alice")
    later = create(isolated_store, "alice")
    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W1)) == lost
    start(isolated_store, lost)  # then its worker W1 sent no heartbeat
    record = isolated_store.get(lost)
    assert record is not None and record.status is JobStatus.RUNNING

    outcome = isolated_store.requeue_lost(
        lost, queue=QUEUE, hostname=W1, delivery=1, silent_seconds=0, max_deliveries=3
    )

    assert outcome.action == "requeued"
    claim = isolated_store.claim(queue=QUEUE, hostname=W2)
    assert claim is not None and claim.jobs == [(lost, 1)]
    assert claimed(isolated_store.claim(queue=QUEUE, hostname=W2)) == later
