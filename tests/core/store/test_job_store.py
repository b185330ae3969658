"""The job store against the real Redis: transitions, races, listing, expiry, events."""

from __future__ import annotations

import json
import threading
import time
from typing import TypeVar

import pytest
import redis
import redis.asyncio

from core.experiment.jobs import JobStatus, Summary, is_job_id, new_job_id
from core.experiment.limits import Limits
from core.experiment.spec import ExperimentSpec
from core.settings import Settings
from core.store.events import EVENTS_MAXLEN
from core.store.jobs import Created, IdempotencyKeyReused
from core.store.keys import JobKeys, StudyKeys, plot_field
from core.store.multiplex import MultiplexedRedis
from core.store.pages import InvalidCursor, decode_cursor, encode_cursor
from core.store.plans import Plan
from core.store.plots import MAX_CACHED_PLOTS
from core.store.records import JobRecord, WorkerInfo
from core.store.stores import AsyncJobStore, JobStore, StorePlans, plans_from_settings

T = TypeVar("T")

WORKER = WorkerInfo(hostname="w1@test", device="cpu", device_name="CPU", tensorflow="2.21.0")
SUMMARY = Summary(loss=0.25, accuracy=0.9, verdicts=("vanishing",), diverged=False)


def spec(epochs: int = 3) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"seed": 7, "training": {"epochs": epochs}})


def queued(store: JobStore, epochs: int = 3) -> JobRecord:
    return store.create(spec=spec(epochs), queue="cpu").record


def running(store: JobStore, epochs: int = 3) -> JobRecord:
    record = store.mark_running(queued(store, epochs).id, worker=WORKER, max_deliveries=3)
    assert record is not None
    return record


def succeed(store: JobStore, job_id: str, **plots: bytes) -> bool:
    return store.mark_succeeded(
        job_id, summary=SUMMARY, result_json='{"version":1}', plots=plots or {"weights": b"png"}
    )


def status_index(store: JobStore, job_id: str) -> list[JobStatus]:
    """Every per-status index holding `job_id` (exactly one, when consistent)."""
    client = store.client
    keys = store.plans.keys
    return [s for s in JobStatus if client.zscore(keys.jobs_with_status(s), job_id) is not None]


def ttl(store: JobStore, key: str) -> int:
    seconds: int = store.client.ttl(key)  # type: ignore[assignment]  # redis-py's sync|async type
    return seconds


def final_events(store: JobStore, job_id: str) -> list[str]:
    finals = [
        json.loads(event.data)["status"]
        for event in store.read_events(job_id)
        if event.type == "state"
    ]
    return [status for status in finals if JobStatus(status).finished]


# ----------------------------------------------------------------------- ids


def test_job_ids_sort_by_creation_time() -> None:
    ids = [new_job_id(now=1_700_000_000 + step) for step in range(5)]
    assert ids == sorted(ids)
    assert all(is_job_id(job_id) for job_id in ids)
    assert not is_job_id("../../etc") and not is_job_id(ids[0].lower())


def test_cursor_round_trips_and_refuses_forgeries() -> None:
    job_id = new_job_id()
    assert decode_cursor(encode_cursor(job_id)) == job_id
    for forged in ("", "!!!", encode_cursor("not-an-id")):
        with pytest.raises(InvalidCursor):
            decode_cursor(forged)


# ------------------------------------------------------------------- creation


def test_create_queues_a_job_with_its_spec(isolated_store: JobStore) -> None:
    record = queued(isolated_store, epochs=4)

    assert record.status is JobStatus.QUEUED
    assert (record.epoch, record.epochs, record.deliveries) == (0, 4, 0)
    assert record.spec["training"]["epochs"] == 4 and record.spec["seed"] == 7
    assert isolated_store.get(record.id) == record
    assert status_index(isolated_store, record.id) == [JobStatus.QUEUED]
    assert [event.type for event in isolated_store.read_events(record.id)] == ["state"]
    public = record.to_public()
    assert public["status"] == "queued" and public["created_at"].endswith("Z")


def test_get_unknown_job_is_none(isolated_store: JobStore) -> None:
    assert isolated_store.get(new_job_id()) is None


def test_idempotency_key_replays_the_first_job(isolated_store: JobStore) -> None:
    first = isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")
    again = isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")

    assert first.new and not again.new
    assert again.record.id == first.record.id
    assert isolated_store.list_jobs().items == [first.record]


def test_idempotency_key_with_another_body_is_refused(isolated_store: JobStore) -> None:
    first = isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")
    with pytest.raises(IdempotencyKeyReused) as raised:
        isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="b")
    assert raised.value.job_id == first.record.id


def test_idempotency_key_of_a_deleted_job_makes_a_new_one(isolated_store: JobStore) -> None:
    first = isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")
    assert isolated_store.delete(first.record.id)

    again = isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")
    assert again.new and again.record.id != first.record.id


def step(store: JobStore, plan: Plan[T]) -> T | Plan[T]:
    """One round trip of `plan`: its result, or the plan of the next round trip."""
    return plan.decode(store._send(plan))


def test_two_replays_of_a_gone_job_at_once_make_one_job(isolated_store: JobStore) -> None:
    first = isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")
    assert isolated_store.delete(first.record.id)
    plans = [
        isolated_store.plans.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")
        for _ in range(2)
    ]
    # Both find the key, then both find its job gone, before either creates anew.
    for _ in range(2):
        plans = [step(isolated_store, plan) for plan in plans]  # type: ignore[misc]
    assert all(isinstance(plan, Plan) for plan in plans)

    one = isolated_store._run(plans[0])
    other = isolated_store._run(plans[1])

    assert one.new and not other.new and other.record.id == one.record.id
    assert [job.id for job in isolated_store.list_jobs().items] == [one.record.id]


def test_many_replays_of_a_gone_job_at_once_make_one_job(isolated_store: JobStore) -> None:
    first = isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")
    assert isolated_store.delete(first.record.id)
    barrier = threading.Barrier(8)
    made: list[Created] = []

    def replay() -> None:
        barrier.wait()
        made.append(
            isolated_store.create(spec=spec(), queue="cpu", idempotency_key="k", fingerprint="a")
        )

    threads = [threading.Thread(target=replay) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(created.new for created in made) == 1
    assert len({created.record.id for created in made}) == 1


# ------------------------------------------------------------------- running


def test_mark_running_counts_the_delivery_and_names_the_worker(isolated_store: JobStore) -> None:
    record = running(isolated_store)

    assert record.status is JobStatus.RUNNING
    assert record.deliveries == 1 and record.started_at is not None
    assert record.worker == WORKER.to_json_dict()
    assert status_index(isolated_store, record.id) == [JobStatus.RUNNING]


def test_redelivery_beyond_the_limit_fails_the_job(isolated_store: JobStore) -> None:
    job_id = queued(isolated_store).id
    for _ in range(2):
        assert isolated_store.mark_running(job_id, worker=WORKER, max_deliveries=2) is not None

    assert isolated_store.mark_running(job_id, worker=WORKER, max_deliveries=2) is None
    record = isolated_store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error is not None and record.error["type"] == "TooManyDeliveries"
    assert status_index(isolated_store, job_id) == [JobStatus.FAILED]


def test_mark_running_refuses_finished_and_unknown_jobs(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    assert succeed(isolated_store, job_id)

    assert isolated_store.mark_running(job_id, worker=WORKER, max_deliveries=3) is None
    assert isolated_store.mark_running(new_job_id(), worker=WORKER, max_deliveries=3) is None
    record = isolated_store.get(job_id)
    assert record is not None and record.status is JobStatus.SUCCEEDED and record.deliveries == 1


def test_redelivery_of_a_job_with_a_cancel_asked_cancels_it(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    outcome = isolated_store.request_cancel(job_id)
    assert outcome is not None and outcome.record.cancel_requested

    # The worker died before seeing the cancel; the redelivered job must not run.
    assert isolated_store.mark_running(job_id, worker=WORKER, max_deliveries=3) is None
    record = isolated_store.get(job_id)
    assert record is not None and record.status is JobStatus.CANCELLED


def test_progress_is_recorded_and_streamed_in_order(isolated_store: JobStore) -> None:
    job_id = running(isolated_store, epochs=3).id
    for epoch in (1, 2, 3):
        metrics = {"loss": 1.0 / epoch, "accuracy": float("nan")}
        assert isolated_store.set_progress(job_id, epoch=epoch, epochs=3, metrics=metrics)

    record = isolated_store.get(job_id)
    assert record is not None and (record.epoch, record.epochs) == (3, 3)
    progress = [
        json.loads(e.data) for e in isolated_store.read_events(job_id) if e.type == "progress"
    ]
    assert [event["epoch"] for event in progress] == [1, 2, 3]
    assert progress[1] == {"epoch": 2, "epochs": 3, "loss": 0.5, "accuracy": None}


def test_progress_says_stop_once_a_cancel_is_asked(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    assert not isolated_store.is_cancel_requested(job_id)

    isolated_store.request_cancel(job_id)

    assert isolated_store.is_cancel_requested(job_id)
    assert not isolated_store.set_progress(job_id, epoch=1, epochs=3)


def test_progress_of_a_job_that_is_not_running_changes_nothing(isolated_store: JobStore) -> None:
    job_id = queued(isolated_store).id
    assert not isolated_store.set_progress(job_id, epoch=1, epochs=3)
    assert not isolated_store.set_progress(new_job_id(), epoch=1, epochs=3)
    assert isolated_store.get(new_job_id()) is None  # no half record was written
    record = isolated_store.get(job_id)
    assert record is not None and record.epoch == 0


# ----------------------------------------------------------------- finishing


def test_success_stores_result_plots_and_summary(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    assert isolated_store.mark_succeeded(
        job_id,
        summary=SUMMARY,
        result_json='{"version":1}',
        plots={"weights": b"w-png", "gradients": b"g-png"},
        arrays=b"npz",
    )

    record = isolated_store.get(job_id)
    assert record is not None and record.status is JobStatus.SUCCEEDED
    assert record.summary == SUMMARY.to_json_dict() and record.duration is not None
    assert record.plots == ("weights", "gradients")
    assert isolated_store.get_result(job_id).content == b'{"version":1}'
    assert isolated_store.get_arrays(job_id).content == b"npz"
    plot = isolated_store.get_plot(job_id, field="gradients")
    assert plot.png == b"g-png" and plot.etag is not None and plot.etag.startswith('"')
    assert isolated_store.get_plot(job_id, field="gradients", body=False).png is None
    assert final_events(isolated_store, job_id) == ["succeeded"]


def test_finished_job_keys_expire_together(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    succeed(isolated_store, job_id)

    for key in isolated_store.plans.keys.job(job_id).all():
        if isolated_store.client.exists(key):
            assert 0 < ttl(isolated_store, key) <= isolated_store.plans.job_ttl_seconds, key


def test_stale_delivery_after_success_is_a_no_op(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    assert succeed(isolated_store, job_id)

    assert not succeed(isolated_store, job_id, weights=b"other")
    assert not isolated_store.mark_failed(job_id, error_type="WorkerLost", message="late")
    assert not isolated_store.mark_cancelled(job_id)
    record = isolated_store.get(job_id)
    assert record is not None and record.status is JobStatus.SUCCEEDED and record.error is None
    assert isolated_store.get_plot(job_id, field="weights").png == b"png"
    assert final_events(isolated_store, job_id) == ["succeeded"]


def test_failure_records_the_error(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    assert isolated_store.mark_failed(job_id, error_type="ValueError", message="loss is NaN")

    record = isolated_store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error == {"type": "ValueError", "message": "loss is NaN"}
    assert status_index(isolated_store, job_id) == [JobStatus.FAILED]


def test_cancel_racing_a_finish_leaves_one_consistent_state(isolated_store: JobStore) -> None:
    job_ids = [running(isolated_store).id for _ in range(40)]
    barrier = threading.Barrier(2)

    def finish_all() -> None:
        barrier.wait()
        for job_id in job_ids:
            succeed(isolated_store, job_id)

    def cancel_all() -> None:
        barrier.wait()
        for job_id in reversed(job_ids):
            isolated_store.mark_cancelled(job_id)

    threads = [threading.Thread(target=finish_all), threading.Thread(target=cancel_all)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    outcomes = set()
    for job_id in job_ids:
        record = isolated_store.get(job_id)
        assert record is not None and record.status.finished
        assert status_index(isolated_store, job_id) == [record.status]
        assert final_events(isolated_store, job_id) == [record.status.value]
        stored = isolated_store.get_result(job_id).content
        assert (stored is not None) == (record.status is JobStatus.SUCCEEDED)
        outcomes.add(record.status)
    assert outcomes <= {JobStatus.SUCCEEDED, JobStatus.CANCELLED}


# ------------------------------------------------------------------ cancelling


def test_cancel_of_a_queued_job_cancels_it_now(isolated_store: JobStore) -> None:
    job_id = queued(isolated_store).id
    outcome = isolated_store.request_cancel(job_id)

    assert outcome is not None and outcome.before is JobStatus.QUEUED
    assert outcome.record.status is JobStatus.CANCELLED
    assert isolated_store.mark_running(job_id, worker=WORKER, max_deliveries=3) is None


def test_cancel_of_a_running_job_asks_the_worker(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    outcome = isolated_store.request_cancel(job_id)

    assert outcome is not None and outcome.before is JobStatus.RUNNING
    assert outcome.record.status is JobStatus.RUNNING and outcome.record.cancel_requested
    assert isolated_store.mark_cancelled(job_id)
    assert final_events(isolated_store, job_id) == ["cancelled"]


def test_cancel_of_a_finished_or_unknown_job_changes_nothing(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    succeed(isolated_store, job_id)

    outcome = isolated_store.request_cancel(job_id)
    assert outcome is not None and outcome.before is JobStatus.SUCCEEDED
    assert outcome.record.status is JobStatus.SUCCEEDED and not outcome.record.cancel_requested
    assert isolated_store.request_cancel(new_job_id()) is None


def test_delete_removes_every_key_and_index_entry(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    succeed(isolated_store, job_id)

    assert isolated_store.delete(job_id)
    assert not isolated_store.delete(job_id)
    assert isolated_store.client.exists(*isolated_store.plans.keys.job(job_id).all()) == 0
    assert status_index(isolated_store, job_id) == []
    assert isolated_store.list_jobs().items == []


# --------------------------------------------------------------------- listing


def test_listing_pages_newest_first_stable_under_inserts(isolated_store: JobStore) -> None:
    created = [queued(isolated_store).id for _ in range(7)]
    first = isolated_store.list_jobs(limit=3)
    inserted = queued(isolated_store).id  # a new job must not shift the pages
    second = isolated_store.list_jobs(limit=3, cursor=first.next_cursor)
    third = isolated_store.list_jobs(limit=3, cursor=second.next_cursor)

    pages = [first, second, third]
    listed = [record.id for page in pages for record in page.items]
    assert listed == created[::-1]
    assert third.next_cursor is None and inserted not in listed
    assert isolated_store.list_jobs(limit=1).items[0].id == inserted


def test_listing_filters_by_status(isolated_store: JobStore) -> None:
    waiting = queued(isolated_store).id
    done = running(isolated_store).id
    succeed(isolated_store, done)

    assert [r.id for r in isolated_store.list_jobs(status=JobStatus.QUEUED).items] == [waiting]
    assert [r.id for r in isolated_store.list_jobs(status=JobStatus.SUCCEEDED).items] == [done]
    assert isolated_store.list_jobs(status=JobStatus.RUNNING).items == []


def test_listing_refuses_a_forged_cursor(isolated_store: JobStore) -> None:
    with pytest.raises(InvalidCursor):
        isolated_store.list_jobs(cursor="bm90IGFuIGlk")


def test_expired_jobs_leave_the_listing_and_the_indexes(isolated_store: JobStore) -> None:
    plans = isolated_store.plans
    short = JobStore(
        isolated_store.client,
        StorePlans(plans.keys, job_ttl_seconds=1, idempotency_ttl_seconds=60),
    )
    kept = queued(short).id
    gone = running(short).id
    succeed(short, gone)

    client = isolated_store.client
    deadline = time.monotonic() + 5
    while client.exists(plans.keys.job(gone).record) and time.monotonic() < deadline:
        time.sleep(0.05)
    while client.zscore(plans.keys.expiry, gone) is not None and time.monotonic() < deadline:
        short.list_jobs()  # a listing that meets an expired record prunes the indexes
        time.sleep(0.05)

    assert [record.id for record in short.list_jobs().items] == [kept]
    assert status_index(short, gone) == []
    assert short.metrics(queues=[]).jobs_by_status[JobStatus.SUCCEEDED] == 0


# ----------------------------------------------------------------- plot cache


def test_rendered_plots_are_cached_only_for_finished_jobs(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    field = plot_field("weights", (400, 300, 100))
    assert isolated_store.put_plot(job_id, field=field, png=b"small") is None

    succeed(isolated_store, job_id)
    etag = isolated_store.put_plot(job_id, field=field, png=b"small")

    cached = isolated_store.get_plot(job_id, field=field)
    assert cached.png == b"small" and cached.etag == etag
    plots_key = isolated_store.plans.keys.job(job_id).plots
    assert 0 < ttl(isolated_store, plots_key) <= isolated_store.plans.job_ttl_seconds


def test_plot_cache_is_bounded(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    succeed(isolated_store, job_id)
    sizes = [plot_field("weights", (200 + i, 200, 100)) for i in range(MAX_CACHED_PLOTS + 5)]
    cached = [isolated_store.put_plot(job_id, field=f, png=b"x") is not None for f in sizes]
    assert cached.count(True) == MAX_CACHED_PLOTS - 1  # the default plot holds one slot


def test_renders_of_every_job_share_one_byte_budget_the_oldest_dropped(
    isolated_store: JobStore,
) -> None:
    plans = isolated_store.plans
    store = JobStore(
        isolated_store.client,
        StorePlans(
            plans.keys,
            job_ttl_seconds=plans.job_ttl_seconds,
            idempotency_ttl_seconds=plans.idempotency_ttl_seconds,
            render_cache_bytes=10,
        ),
    )
    jobs = [running(store).id for _ in range(2)]
    for job_id in jobs:
        succeed(store, job_id, weights=b"default-size PNG, outside the budget")
    fields = [plot_field("weights", (200 + i, 200, 100)) for i in range(3)]
    stored = [(jobs[i % 2], field) for i, field in enumerate(fields)]

    for job_id, field in stored:  # 4 bytes each: the third pushes the first out
        assert store.put_plot(job_id, field=field, png=b"abcd") is not None
    assert store.put_plot(jobs[0], field=plot_field("weights", (9, 9, 9)), png=b"x" * 11) is None

    kept = [store.get_plot(job_id, field=field).png for job_id, field in stored]
    assert kept == [None, b"abcd", b"abcd"]
    assert int(store.client.get(plans.keys.render_bytes) or 0) == 8
    assert all(store.get_plot(job_id, field="weights").png for job_id in jobs)


def test_plot_miss_reports_status_and_default_names(isolated_store: JobStore) -> None:
    job_id = running(isolated_store).id
    succeed(isolated_store, job_id, weights=b"w", dataset=b"d")

    miss = isolated_store.get_plot(job_id, field=plot_field("weights", (300, 200, 100)))
    assert miss.png is None and miss.status is JobStatus.SUCCEEDED
    assert miss.names == ("weights", "dataset")
    assert isolated_store.get_plot(new_job_id(), field="weights").status is None


# ---------------------------------------------------------------------- events


def test_events_resume_after_an_id(isolated_store: JobStore) -> None:
    job_id = running(isolated_store, epochs=3).id
    for epoch in (1, 2, 3):
        isolated_store.set_progress(job_id, epoch=epoch, epochs=3)
    succeed(isolated_store, job_id)

    events = isolated_store.read_events(job_id)
    assert [e.type for e in events] == [
        "state",
        "state",
        "progress",
        "progress",
        "progress",
        "state",
    ]
    resumed = isolated_store.read_events(job_id, after=events[2].id)
    assert resumed == events[3:]
    assert isolated_store.read_events(job_id, after=events[-1].id, block_ms=10) == []


def test_event_stream_keeps_the_longest_run() -> None:
    assert Limits.EPOCHS + 10 <= EVENTS_MAXLEN


# --------------------------------------------------------------------- workers


def test_heartbeats_list_live_workers(isolated_store: JobStore) -> None:
    isolated_store.record_heartbeat(queue="cpu", hostname="w1@a")
    isolated_store.record_heartbeat(queue="cpu", hostname="w2@b")
    isolated_store.record_heartbeat(queue="gpu", hostname="g1@c")

    assert isolated_store.live_workers(queue="cpu") == ["w1@a", "w2@b"]
    isolated_store.forget_worker(queue="cpu", hostname="w1@a")
    assert isolated_store.live_workers(queue="cpu") == ["w2@b"]
    assert isolated_store.live_workers(queue="nowhere") == []


def test_a_worker_is_live_for_the_settings_silence_period(
    isolated_store: JobStore, settings: Settings
) -> None:
    # Heartbeats up to 60 s apart are allowed: the window follows worker_silent_seconds,
    # the silence after which a reaper counts the worker lost, not a fixed 30 s.
    patient = settings.model_copy(
        update={"namespace": isolated_store.plans.keys.namespace, "worker_silent_seconds": 180.0}
    )
    store = JobStore(isolated_store.client, plans_from_settings(patient))
    heartbeats = store.plans.keys.worker_heartbeats("cpu")
    now = float(store.client.time()[0])  # type: ignore[index]  # redis-py's sync|async type
    store.client.zadd(heartbeats, {"slow@a": now - 100, "gone@b": now - 200})

    assert store.live_workers(queue="cpu") == ["slow@a"]
    assert isolated_store.live_workers(queue="cpu") == []  # the default 30 s
    assert store.live_workers(queue="cpu", within_seconds=300) == ["gone@b", "slow@a"]


# --------------------------------------------------------------------- metrics


def test_metrics_count_jobs_queues_and_durations(isolated_store: JobStore) -> None:
    queued(isolated_store)
    isolated_store.request_cancel(queued(isolated_store).id)  # no longer waits
    done = running(isolated_store).id
    succeed(isolated_store, done)
    # Messages sent straight to the queue (by a client of an earlier release) wait too.
    isolated_store.client.rpush(isolated_store.plans.keys.celery_queue("cpu"), "m1", "m2")

    snapshot = isolated_store.metrics(queues=["cpu", "gpu"])

    assert snapshot.jobs_by_status[JobStatus.QUEUED] == 1
    assert snapshot.jobs_by_status[JobStatus.SUCCEEDED] == 1
    assert snapshot.queue_depths == {"cpu": 1 + 2, "gpu": 0}
    durations = snapshot.durations[JobStatus.SUCCEEDED]
    assert durations.count == 1 and durations.buckets[-1] == ("+Inf", 1)
    assert snapshot.durations[JobStatus.FAILED].count == 0


# ------------------------------------------------------------------ async twin


@pytest.mark.anyio
async def test_async_store_reads_what_the_sync_store_wrote(
    isolated_store: JobStore, settings: Settings
) -> None:
    job_id = running(isolated_store).id
    isolated_store.set_progress(job_id, epoch=1, epochs=3)
    store = AsyncJobStore(
        redis.asyncio.Redis.from_url(settings.redis_url),
        isolated_store.plans,
        MultiplexedRedis.from_url(settings.redis_url),
    )
    try:
        assert await store.get(job_id) == isolated_store.get(job_id)
        assert await store.set_progress(job_id, epoch=2, epochs=3)
        events = await store.read_events(job_id, after="0", block_ms=100)
        assert [e.type for e in events][-2:] == ["progress", "progress"]
        outcome = await store.request_cancel(job_id)
        assert outcome is not None and outcome.record.cancel_requested
        assert await store.ping()
        page = await store.list_jobs()
        assert [record.id for record in page.items] == [job_id]
        snapshot = await store.metrics(queues=["cpu"])
        assert snapshot.jobs_by_status[JobStatus.RUNNING] == 1
        assert await store.is_cancel_requested(job_id)
        assert await store.mark_cancelled(job_id)
        events = await store.read_events(job_id)  # without blocking: on the shared connection
        assert events[-1].type == "state" and final_events(isolated_store, job_id) == ["cancelled"]
    finally:
        await store.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_records_keys_come_in_the_order_its_scripts_take_them() -> None:
    assert JobKeys("j").all() == ("j", "j:result", "j:arrays", "j:plots", "j:events")
    assert StudyKeys("s").all() == ("s", "s:seen", "s:series", "s:plots", "s:events")
