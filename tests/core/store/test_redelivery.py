"""Worker loss in the store: fencing tokens, dispatches, the outbox and the reaper's atomic
claims."""

from __future__ import annotations

import json
import threading
import time

import pytest

from core.experiment.jobs import JobStatus, Summary
from core.experiment.spec import ExperimentSpec
from core.queue.tasks import training_task
from core.store.records import JobRecord, WorkerInfo
from core.store.stores import JobStore
from core.store.workers import Requeue

LOST = WorkerInfo(hostname="lost@test", device="cpu", device_name="CPU", tensorflow="2")
OTHER = WorkerInfo(hostname="other@test", device="cpu", device_name="CPU", tensorflow="2")
TASK = {"name": "gradwatch.train", "kwargs": {"job_id": "set below"}}
SUMMARY = Summary(loss=0.5, accuracy=0.5)


def started(store: JobStore, *, worker: WorkerInfo = LOST, dispatch: int = 0) -> JobRecord:
    spec = ExperimentSpec.model_validate({"seed": 1, "training": {"epochs": 3}})
    job_id = store.create(spec=spec, queue="cpu").record.id
    task = {**TASK, "kwargs": {"job_id": job_id}}
    record = store.mark_running(
        job_id, worker=worker, max_deliveries=3, dispatch=dispatch, task=task
    )
    assert record is not None
    return record


def reap(store: JobStore, record: JobRecord, *, silent: float = 0.0, limit: int = 3) -> Requeue:
    assert record.worker is not None
    return store.requeue_lost(
        record.id,
        queue=record.queue,
        hostname=record.worker["hostname"],
        delivery=record.deliveries,
        silent_seconds=silent,
        max_deliveries=limit,
    )


def assert_waits_again(store: JobStore, job_id: str, *, dispatch: int) -> None:
    """The job waits on the dispatcher again, at `dispatch`: the next claim takes it, and
    its claim waits in the outbox until confirmed."""
    assert store.waiting(queue="cpu") == [job_id]
    claim = store.claim(queue="cpu", hostname=OTHER.hostname)
    assert claim is not None and claim.jobs == [(job_id, dispatch)]
    assert store.unsent_dispatches() == [(job_id, dispatch)]
    store.confirm_dispatch(job_id, dispatch=dispatch)
    assert store.unsent_dispatches() == [] and store.waiting(queue="cpu") == []


def current(store: JobStore, job_id: str) -> JobRecord:
    record = store.get(job_id)
    assert record is not None
    return record


def test_a_stale_delivery_cannot_write_once_the_job_was_delivered_again(
    isolated_store: JobStore,
) -> None:
    first = started(isolated_store)
    second = isolated_store.mark_running(first.id, worker=OTHER, max_deliveries=3, dispatch=0)
    assert second is not None and (first.deliveries, second.deliveries) == (1, 2)

    stale = first.deliveries
    assert not isolated_store.set_progress(first.id, epoch=1, epochs=3, delivery=stale)
    assert not isolated_store.mark_succeeded(
        first.id, summary=SUMMARY, result_json="{}", plots={}, delivery=stale
    )
    assert not isolated_store.mark_failed(first.id, error_type="X", message="x", delivery=stale)
    assert not isolated_store.mark_cancelled(first.id, delivery=stale)
    assert not isolated_store.set_worker(first.id, worker=LOST, delivery=stale)
    record = current(isolated_store, first.id)
    assert record.status is JobStatus.RUNNING and record.epoch == 0
    assert record.worker == OTHER.to_json_dict()

    assert isolated_store.set_progress(first.id, epoch=1, epochs=3, delivery=2)
    assert isolated_store.mark_succeeded(
        first.id, summary=SUMMARY, result_json="{}", plots={}, delivery=2
    )
    assert current(isolated_store, first.id).status is JobStatus.SUCCEEDED


def test_a_job_whose_worker_sent_no_heartbeat_is_requeued_with_its_task(
    isolated_store: JobStore,
) -> None:
    record = started(isolated_store)
    assert isolated_store.set_progress(record.id, epoch=2, epochs=3, delivery=1)

    outcome = reap(isolated_store, record)

    assert outcome.action == "requeued" and outcome.dispatch == 1
    assert outcome.task == {"name": "gradwatch.train", "kwargs": {"job_id": record.id}}
    assert outcome.queue == "cpu" and "lost@test sent no heartbeat" in outcome.reason
    after = current(isolated_store, record.id)
    assert after.status is JobStatus.QUEUED and after.deliveries == 1
    # Queued again, it shows no run; the event names the lost run's worker.
    assert (after.worker, after.started_at, after.epoch) == (None, None, 0)
    assert after.to_public()["worker"] is None and after.to_public()["started_at"] is None
    [event] = [e for e in isolated_store.read_events(record.id) if "requeued" in e.data]
    assert json.loads(event.data) == {
        "status": "queued",
        "requeued": True,
        "dispatch": 1,
        "reason": outcome.reason,
        "last_worker": "lost@test",
    }
    assert_waits_again(isolated_store, record.id, dispatch=1)
    # A second round finds nothing to do.
    assert reap(isolated_store, record).action == "skip"


def test_a_message_of_an_older_dispatch_no_longer_starts_the_job(
    isolated_store: JobStore,
) -> None:
    record = started(isolated_store)
    reap(isolated_store, record)

    # The first message, restored by Celery after its visibility timeout.
    assert isolated_store.mark_running(record.id, worker=LOST, max_deliveries=3, dispatch=0) is None
    assert current(isolated_store, record.id).status is JobStatus.QUEUED
    again = isolated_store.mark_running(record.id, worker=OTHER, max_deliveries=3, dispatch=1)
    assert again is not None and again.deliveries == 2
    # The old delivery, come back from a partition, may not fail or cancel it either.
    assert not isolated_store.mark_failed(record.id, error_type="X", message="x", dispatch=0)
    assert not isolated_store.mark_cancelled(record.id, delivery=1)
    assert current(isolated_store, record.id).status is JobStatus.RUNNING


def test_a_job_on_a_live_worker_that_lists_it_is_left_alone(isolated_store: JobStore) -> None:
    record = started(isolated_store)
    time.sleep(0.5)
    isolated_store.record_worker_jobs(hostname="lost@test", jobs=[("x", 0), (record.id, 0)])
    isolated_store.record_heartbeat(queue="cpu", hostname="lost@test")

    assert reap(isolated_store, record, silent=0.4).action == "skip"
    assert current(isolated_store, record.id).status is JobStatus.RUNNING


def test_a_live_worker_that_no_longer_lists_the_job_has_lost_it(
    isolated_store: JobStore,
) -> None:
    record = started(isolated_store)
    # A report taken as the job started may predate it: it proves nothing yet.
    isolated_store.record_worker_jobs(hostname="lost@test", jobs=[])
    time.sleep(0.5)
    isolated_store.record_heartbeat(queue="cpu", hostname="lost@test")
    assert reap(isolated_store, record, silent=0.4).action == "skip"

    isolated_store.record_worker_jobs(hostname="lost@test", jobs=[])
    outcome = reap(isolated_store, record, silent=0.4)

    assert outcome.action == "requeued"
    assert outcome.reason == "its worker lost@test was no longer running it"


def test_a_job_is_not_reaped_before_a_silence_period_has_passed(
    isolated_store: JobStore,
) -> None:
    record = started(isolated_store)

    assert reap(isolated_store, record, silent=30).action == "skip"


def test_a_job_lost_on_its_last_delivery_fails_with_the_reason(
    isolated_store: JobStore,
) -> None:
    record = started(isolated_store)

    outcome = reap(isolated_store, record, limit=1)

    assert outcome.action == "failed"
    after = current(isolated_store, record.id)
    assert after.status is JobStatus.FAILED and after.error is not None
    assert after.error["type"] == "TooManyDeliveries"
    assert after.error["message"] == (
        "delivered 1 time, the limit, and its worker lost@test sent no heartbeat: "
        "the job may be killing its worker"
    )


def test_a_lost_job_with_a_cancel_asked_is_cancelled(isolated_store: JobStore) -> None:
    record = started(isolated_store)
    isolated_store.request_cancel(record.id)

    assert reap(isolated_store, record).action == "cancelled"
    assert current(isolated_store, record.id).status is JobStatus.CANCELLED


def test_of_many_reapers_at_once_exactly_one_requeues(isolated_store: JobStore) -> None:
    record = started(isolated_store)
    outcomes: list[Requeue] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        outcomes.append(reap(isolated_store, record))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcome.action for outcome in outcomes) == ["requeued"] + ["skip"] * 7
    assert_waits_again(isolated_store, record.id, dispatch=1)


def claimed(store: JobStore) -> str:
    """A new job, claimed by worker `lost@test`, its message not yet confirmed sent."""
    spec = ExperimentSpec.model_validate({"seed": 1, "training": {"epochs": 3}})
    job_id = store.create(spec=spec, queue="cpu").record.id
    claim = store.claim(queue="cpu", hostname=LOST.hostname)
    assert claim is not None and claim.jobs == [(job_id, 0)]
    return job_id


def test_a_new_job_waits_on_the_dispatcher_with_its_task_and_in_no_outbox(
    isolated_store: JobStore,
) -> None:
    spec = ExperimentSpec.model_validate({"seed": 1, "training": {"epochs": 3}})
    job_id = isolated_store.create(spec=spec, queue="cpu").record.id

    assert isolated_store.waiting(queue="cpu") == [job_id]
    assert isolated_store.unsent_dispatches() == []  # nothing to send until a worker claims it
    task = isolated_store.client.hget(isolated_store.plans.keys.job(job_id).record, "task")
    assert json.loads(task or b"null") == training_task(job_id)


def test_a_claim_waits_in_the_outbox_until_its_message_is_confirmed(
    isolated_store: JobStore,
) -> None:
    job_id = claimed(isolated_store)

    assert isolated_store.waiting(queue="cpu") == []
    assert isolated_store.unsent_dispatches() == [(job_id, 0)]
    assert isolated_store.unsent_dispatches(older_than=30) == []  # not overdue yet
    isolated_store.confirm_dispatch(job_id, dispatch=0)
    assert isolated_store.unsent_dispatches() == []


def test_a_claim_never_confirmed_sent_is_queued_anew_voiding_a_late_message(
    isolated_store: JobStore,
) -> None:
    job_id = claimed(isolated_store)
    # Not yet overdue: left to the worker that claimed it.
    assert isolated_store.redispatch(job_id, dispatch=0, unconfirmed_seconds=30).action == "skip"

    outcome = isolated_store.redispatch(job_id, dispatch=0, unconfirmed_seconds=0)

    assert outcome.action == "requeued" and outcome.dispatch == 1
    assert outcome.task == training_task(job_id) and outcome.queue == "cpu"
    assert outcome.reason == "its message was not confirmed sent"
    record = current(isolated_store, job_id)
    assert record.status is JobStatus.QUEUED and record.dispatch == 1
    assert record.deliveries == 0 and record.worker is None
    # The first message, had it gone out after all, may not start the job.
    assert isolated_store.mark_running(job_id, worker=LOST, max_deliveries=3, dispatch=0) is None
    assert current(isolated_store, job_id).deliveries == 0
    assert_waits_again(isolated_store, job_id, dispatch=1)
    again = isolated_store.mark_running(job_id, worker=OTHER, max_deliveries=3, dispatch=1)
    assert again is not None and again.deliveries == 1


@pytest.mark.parametrize("since", ["started", "cancelled", "deleted"])
def test_an_unconfirmed_claim_of_a_job_that_moved_on_is_dropped(
    isolated_store: JobStore, since: str
) -> None:
    job_id = claimed(isolated_store)
    if since == "started":  # sent, run, and its claimer died before confirming
        isolated_store.mark_running(job_id, worker=OTHER, max_deliveries=3, dispatch=0)
    elif since == "cancelled":
        isolated_store.request_cancel(job_id)
    else:
        isolated_store.delete(job_id)

    assert isolated_store.redispatch(job_id, dispatch=0, unconfirmed_seconds=0).action == "skip"
    assert isolated_store.unsent_dispatches() == []
    assert isolated_store.waiting(queue="cpu") == []


def test_a_running_delivery_names_its_worker_in_full_once_its_engine_is_loaded(
    isolated_store: JobStore,
) -> None:
    before = WorkerInfo(hostname="w@test", device="gpu", device_name="GPU", tensorflow="2")
    record = started(isolated_store, worker=before)
    loaded = WorkerInfo(hostname="w@test", device="gpu", device_name="NVIDIA H200", tensorflow="2")

    assert isolated_store.set_worker(record.id, worker=loaded, delivery=record.deliveries)

    assert current(isolated_store, record.id).worker == loaded.to_json_dict()
    isolated_store.request_cancel(record.id)
    assert isolated_store.mark_cancelled(record.id, delivery=record.deliveries)
    assert not isolated_store.set_worker(record.id, worker=before, delivery=record.deliveries)


# ------------------------------------------------------------- held, never started


def held(store: JobStore, *, hostname: str = "lost@test") -> str:
    """A queued job worker `hostname` claimed and sent itself, not yet started: its claim
    put it in the worker's report."""
    spec = ExperimentSpec.model_validate({"seed": 1, "training": {"epochs": 3}})
    job_id = store.create(spec=spec, queue="cpu").record.id
    store.record_heartbeat(queue="cpu", hostname=hostname)
    assert store.claim(queue="cpu", hostname=hostname) is not None
    store.confirm_dispatch(job_id, dispatch=0)
    return job_id


def test_a_queued_job_held_by_a_worker_that_went_silent_is_dispatched_anew(
    isolated_store: JobStore,
) -> None:
    job_id = held(isolated_store)
    assert isolated_store.lost_workers(queue="cpu", silent_seconds=30) == []
    time.sleep(0.3)

    [(host, jobs)] = isolated_store.lost_workers(queue="cpu", silent_seconds=0.2)
    assert (host, jobs) == ("lost@test", [(job_id, 0)])
    outcome = isolated_store.requeue_held(
        job_id, queue="cpu", hostname=host, dispatch=0, silent_seconds=0.2
    )

    assert outcome.action == "requeued" and outcome.dispatch == 1
    assert outcome.reason == "its worker lost@test was lost before it started the job"
    assert outcome.task == training_task(job_id)
    assert current(isolated_store, job_id).deliveries == 0
    assert_waits_again(isolated_store, job_id, dispatch=1)
    # Done once: the report still names it, but at a dispatch the job has left.
    again = isolated_store.requeue_held(
        job_id, queue="cpu", hostname=host, dispatch=0, silent_seconds=0.2
    )
    assert again.action == "skip"
    isolated_store.forget_report(queue="cpu", hostname=host, silent_seconds=0.2)
    assert isolated_store.lost_workers(queue="cpu", silent_seconds=0.2) == []


def test_a_held_job_is_left_alone_while_its_worker_beats_or_once_it_started(
    isolated_store: JobStore,
) -> None:
    job_id = held(isolated_store)
    time.sleep(0.3)
    isolated_store.record_heartbeat(queue="cpu", hostname="lost@test")  # beats again
    claim = {"queue": "cpu", "hostname": "lost@test", "dispatch": 0, "silent_seconds": 0.2}

    assert isolated_store.requeue_held(job_id, **claim).action == "skip"  # type: ignore[arg-type]
    isolated_store.forget_report(queue="cpu", hostname="lost@test", silent_seconds=0.2)
    assert isolated_store.client.exists(isolated_store.plans.keys.worker_jobs("lost@test"))

    time.sleep(0.3)  # silent now, but the job had started before it went
    isolated_store.mark_running(job_id, worker=LOST, max_deliveries=3, dispatch=0)
    assert isolated_store.requeue_held(job_id, **claim).action == "skip"  # type: ignore[arg-type]
    assert current(isolated_store, job_id).status is JobStatus.RUNNING


# ------------------------------------------- runs cut short by a lost connection


def test_a_run_cut_short_by_a_lost_connection_does_not_count_as_a_delivery(
    isolated_store: JobStore,
) -> None:
    record = started(isolated_store)  # delivery 1 of 3, on lost@test
    # Celery stopped it when its worker's broker connection broke, and delivered it again.
    assert isolated_store.note_interrupted(record.id, hostname="lost@test", note="n1")
    assert not isolated_store.note_interrupted(record.id, hostname="lost@test", note="n1")
    assert not isolated_store.note_interrupted(record.id, hostname="other@test", note="n2")
    for _ in range(2):
        assert isolated_store.mark_running(record.id, worker=LOST, max_deliveries=3) is not None
    # A late word from the worker whose run another delivery took over still counts.
    assert isolated_store.mark_running(record.id, worker=OTHER, max_deliveries=3) is not None
    assert isolated_store.note_interrupted(record.id, hostname="lost@test", note="n3")

    fifth = isolated_store.mark_running(record.id, worker=OTHER, max_deliveries=3)

    assert fifth is not None and fifth.deliveries == 5  # 3 counted, 2 cut short
    refused = isolated_store.mark_running(record.id, worker=OTHER, max_deliveries=3)
    assert refused is None
    after = current(isolated_store, record.id)
    assert after.status is JobStatus.FAILED and after.error is not None
    assert after.error["message"] == (
        "delivered 4 times (and 2 more cut short by lost connections to Redis), over the "
        "limit of 3: the job may be killing its worker"
    )


def test_a_lost_job_whose_runs_were_cut_short_is_requeued_not_failed(
    isolated_store: JobStore,
) -> None:
    record = started(isolated_store)
    assert isolated_store.note_interrupted(record.id, hostname="lost@test", note="n1")

    assert reap(isolated_store, record, limit=1).action == "requeued"
    again = isolated_store.mark_running(record.id, worker=LOST, max_deliveries=1, dispatch=1)
    assert again is not None and again.deliveries == 2

    outcome = reap(isolated_store, again, limit=1)
    assert outcome.action == "failed"
    error = current(isolated_store, record.id).error
    assert error is not None and error["message"].startswith(
        "delivered 1 time (and 1 more cut short by lost connections to Redis), the limit"
    )
