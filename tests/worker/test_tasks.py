"""The training task end to end: a real Celery worker process on the real Redis.

Jobs are created in the store, where the dispatcher hands them to a worker, as the API
makes them (or parked, changed and sent straight to the queue, where a test needs it);
the session's worker (`worker_process`) trains them with the real engine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from celery.exceptions import TimeLimitExceeded

from core.experiment.jobs import FINISHED, JobStatus
from core.store.keys import Keys
from core.store.records import WorkerInfo
from tests.conftest import LONG_SPEC, ROOT, WORST_SPEC, Worker
from tests.worker.conftest import QUICK_SPEC, Deployment
from tests.worker.test_failures import GRAPH_EXECUTION_ERROR

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_job_runs_to_succeeded_with_its_plots_stored(
    deployment: Deployment, worker_process: Worker
) -> None:
    job_id = deployment.submit(QUICK_SPEC)

    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.SUCCEEDED, record.error
    assert record.worker is not None
    assert record.worker["hostname"] == worker_process.hostname
    assert record.worker["device"] == "cpu"
    assert record.worker["device_name"]  # "CPU", or the processor's name
    assert record.worker["tensorflow"]
    assert record.deliveries == 1
    assert record.summary is not None and record.summary["loss"] is not None
    result = json.loads(deployment.store.get_result(job_id).content or b"null")
    assert result["history"]["epoch"] == [1, 2, 3]
    assert set(record.plots) == {"weights", "gradients"}  # the rest drawn on request
    for name in record.plots:
        stored = deployment.store.get_plot(job_id, field=name)
        assert stored.png is not None and stored.png.startswith(PNG_SIGNATURE), name
        assert stored.etag


def test_progress_is_recorded_for_every_epoch_in_order(
    deployment: Deployment, worker_process: Worker
) -> None:
    job_id = deployment.submit({"seed": 7, "training": {"epochs": 5}})

    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.SUCCEEDED, record.error
    assert (record.epoch, record.epochs) == (5, 5)
    events = deployment.store.read_events(job_id, count=1000)
    progress = [json.loads(event.data) for event in events if event.type == "progress"]
    assert [event["epoch"] for event in progress] == [1, 2, 3, 4, 5]
    assert all(event["epochs"] == 5 and event["loss"] is not None for event in progress)
    states = [json.loads(event.data)["status"] for event in events if event.type == "state"]
    assert states == ["queued", "running", "succeeded"]
    ids = [event.id for event in events]
    assert ids == sorted(ids, key=lambda entry: tuple(map(int, entry.split("-"))))


def test_a_cancel_request_stops_a_running_job_between_epochs(
    deployment: Deployment, worker_process: Worker
) -> None:
    job_id = deployment.submit(LONG_SPEC)
    deployment.wait_until_training(job_id)

    outcome = deployment.store.request_cancel(job_id)

    assert outcome is not None and outcome.before is JobStatus.RUNNING
    record = deployment.wait_for_status(job_id, FINISHED, timeout=30)
    assert record.status is JobStatus.CANCELLED
    assert 1 <= record.epoch < 1000
    assert deployment.store.get_result(job_id).content is None


def test_a_cancel_stops_the_slowest_spec_within_its_first_epoch(
    deployment: Deployment, worker_process: Worker
) -> None:
    job_id = deployment.submit(WORST_SPEC)
    deployment.wait_for_status(job_id, {JobStatus.RUNNING})

    deployment.store.request_cancel(job_id)

    # Its epoch would take over half an hour: only a check between its calls stops it.
    record = deployment.wait_for_status(job_id, FINISHED, timeout=60)
    assert record.status is JobStatus.CANCELLED
    assert record.epoch == 0
    # The worker is free again at once.
    follow_up = deployment.submit(QUICK_SPEC)
    assert deployment.wait_for_status(follow_up, FINISHED).status is JobStatus.SUCCEEDED


def test_a_job_cancelled_while_queued_never_runs(
    deployment: Deployment, worker_process: Worker
) -> None:
    job_id = deployment.park(QUICK_SPEC)
    deployment.store.request_cancel(job_id)
    deployment.enqueue(job_id)
    # One worker takes a queue's messages in order: once a later one is done, the
    # cancelled one was seen.
    later = deployment.park({"seed": 7, "training": {"epochs": 1}})
    deployment.enqueue(later)
    deployment.wait_for_status(later, FINISHED)

    record = deployment.store.get(job_id)
    assert record is not None
    assert record.status is JobStatus.CANCELLED
    assert record.deliveries == 0 and record.worker is None


def test_an_exception_fails_the_job_with_its_type_and_message(
    deployment: Deployment, worker_process: Worker
) -> None:
    job_id = deployment.park(QUICK_SPEC)
    # A stored spec the engine cannot take (as if written by an older release).
    record_key = Keys(deployment.settings.namespace).job(job_id).record
    deployment.store.client.hset(record_key, "spec", json.dumps({"training": {"epochs": 0}}))
    deployment.enqueue(job_id)

    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert record.error["type"] == "ValidationError"
    assert "epochs" in record.error["message"]
    assert "Traceback" not in record.error["message"]
    assert "\n" not in record.error["message"] and 'File "' not in record.error["message"]


def test_a_job_out_of_deliveries_is_failed_with_the_reason(
    deployment: Deployment, worker_process: Worker
) -> None:
    job_id = deployment.park(QUICK_SPEC)
    # Earlier deliveries that each lost their worker mid-job.
    lost = WorkerInfo("lost@host", "cpu", "CPU", "")
    limit = deployment.settings.max_deliveries
    for _ in range(limit):
        assert deployment.store.mark_running(job_id, worker=lost, max_deliveries=limit)
    deployment.enqueue(job_id)

    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error["type"] == "TooManyDeliveries"
    assert record.deliveries == limit + 1


def test_the_hard_time_limit_fails_the_job_from_the_main_process(
    deployment: Deployment,
) -> None:
    # A run stuck in native code misses the soft limit; at the hard one (armed when
    # the soft one fires) Celery kills the pool process and calls on_failure in the
    # main process. Called here as Celery calls it.
    from worker.tasks import train

    job_id = deployment.park(QUICK_SPEC)
    deployment.store.mark_running(
        job_id, worker=WorkerInfo("stuck@host", "cpu", "CPU", ""), max_deliveries=3
    )

    train.on_failure(TimeLimitExceeded(1860), job_id, (), {"job_id": job_id}, None)

    record = deployment.store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error == {
        "type": "TimeLimitExceeded",
        "message": "the job ran past the hard time limit of 1860 s and its process was killed",
    }


def test_a_failure_outside_the_body_tells_its_reason_without_the_stack(
    deployment: Deployment,
) -> None:
    from worker.tasks import train

    job_id = deployment.park(QUICK_SPEC)
    deployment.store.mark_running(
        job_id, worker=WorkerInfo("w@host", "cpu", "CPU", ""), max_deliveries=3
    )

    train.on_failure(RuntimeError(GRAPH_EXECUTION_ERROR), job_id, (), {"job_id": job_id}, None)

    record = deployment.store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error == {
        "type": "RuntimeError",
        "message": "Graph execution error: Matrix size-incompatible: In[0]: [32,2], In[1]: [3,5]",
    }


@pytest.mark.parametrize("module", ["worker.celery_app", "worker.tasks"])
def test_the_worker_modules_do_not_import_tensorflow(module: str) -> None:
    # Celery forks its pool from the process that imports these: TensorFlow must not be there.
    probe = (
        f"import sys, {module}; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras'} "
        "or m in {'core.engine.run', 'matplotlib'}); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
