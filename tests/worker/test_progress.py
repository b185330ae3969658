"""A job's progress as the training hook writes it (worker.progress): every epoch's
event, in order, but the epochs of a fast run together, a few round trips a run; and
a cancel still stops the run at the next write. Against the real Redis, on a clock
the test moves."""

from __future__ import annotations

import json
import math

import pytest

from core.experiment.hooks import TrainingCancelled
from core.experiment.spec import ExperimentSpec
from core.store.records import WorkerInfo
from core.store.stores import JobStore
from worker.progress import PROGRESS_SECONDS, JobProgressHook

WORKER = WorkerInfo(hostname="progress@test", device="cpu", device_name="CPU", tensorflow="0")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def running_job(store: JobStore) -> tuple[str, int]:
    job_id = store.create(spec=ExperimentSpec.model_validate({}), queue="nowhere").record.id
    record = store.mark_running(job_id, worker=WORKER, max_deliveries=3)
    assert record is not None
    return job_id, record.deliveries


def progress(store: JobStore, job_id: str) -> list[dict[str, float]]:
    events = store.read_events(job_id, count=1000)
    return [json.loads(event.data) for event in events if event.type == "progress"]


def epoch_of(store: JobStore, job_id: str) -> int | None:
    record = store.get(job_id)
    assert record is not None
    return record.epoch


def test_a_fast_runs_epochs_are_written_together_every_one_in_order(
    isolated_store: JobStore,
) -> None:
    job_id, delivery = running_job(isolated_store)
    clock = Clock()
    hook = JobProgressHook(isolated_store, job_id, delivery=delivery, clock=clock)
    epochs, step = 20, 3 / 128  # seconds an epoch, exact in binary: no rounding at the edges
    written_at = []
    for epoch in range(1, epochs + 1):
        clock.now += step
        before = len(progress(isolated_store, job_id))
        hook.on_epoch_end(epoch, epochs, {"loss": 1.0 / epoch})
        if len(progress(isolated_store, job_id)) > before:
            written_at.append(epoch)
            assert epoch_of(isolated_store, job_id) == epoch

    # The first at once (training began), then a write every PROGRESS_SECONDS, the last.
    every = math.ceil(PROGRESS_SECONDS / step)
    assert written_at == [1, *range(1 + every, epochs, every), epochs]
    assert len(written_at) < epochs / 3
    events = progress(isolated_store, job_id)
    assert [e["epoch"] for e in events] == list(range(1, epochs + 1))
    assert [e["loss"] for e in events] == [1.0 / epoch for epoch in range(1, epochs + 1)]
    assert all(e["epochs"] == epochs for e in events)


def test_a_run_that_stops_early_tells_the_epochs_it_trained(isolated_store: JobStore) -> None:
    job_id, delivery = running_job(isolated_store)
    clock = Clock()
    hook = JobProgressHook(isolated_store, job_id, delivery=delivery, clock=clock)
    for epoch in (1, 2, 3):  # diverged after the third of 50: no last epoch to write
        hook.on_epoch_end(epoch, 50, {"loss": float(epoch)})
    assert [e["epoch"] for e in progress(isolated_store, job_id)] == [1]

    hook.on_train_end({"loss": 3.0})
    assert [e["epoch"] for e in progress(isolated_store, job_id)] == [1, 2, 3]
    assert epoch_of(isolated_store, job_id) == 3


def test_a_cancel_stops_the_run_at_the_next_write(isolated_store: JobStore) -> None:
    job_id, delivery = running_job(isolated_store)
    clock = Clock()
    hook = JobProgressHook(isolated_store, job_id, delivery=delivery, clock=clock)
    hook.on_epoch_end(1, 100, {"loss": 1.0})
    isolated_store.request_cancel(job_id)
    hook.on_epoch_end(2, 100, {"loss": 0.5})  # within PROGRESS_SECONDS: not written yet
    clock.now += PROGRESS_SECONDS
    with pytest.raises(TrainingCancelled, match="after epoch 3/100"):
        hook.on_epoch_end(3, 100, {"loss": 0.25})
    assert [e["epoch"] for e in progress(isolated_store, job_id)] == [1, 2, 3]
