"""JSON only across the queue: the worker refuses a pickled message before unpickling it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.experiment.jobs import FINISHED, JobStatus
from core.queue.app import celery_config
from core.queue.tasks import TRAIN_TASK
from core.settings import Settings
from tests.conftest import Worker
from tests.worker.conftest import Deployment


class _OpensAFileWhenUnpickled:
    """Unpickling this calls open(path, "w"): the proof that a payload was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def test_the_queue_speaks_json_only(settings: Settings) -> None:
    from worker.celery_app import app

    config = celery_config(settings)
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert list(app.conf.accept_content) == ["json"]


def test_a_pickled_message_is_refused_unopened(
    deployment: Deployment, worker_process: Worker, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    job_id = deployment.park({"seed": 1, "training": {"epochs": 1}})
    deployment.celery.send_task(
        TRAIN_TASK,
        kwargs={"job_id": job_id, "payload": _OpensAFileWhenUnpickled(marker)},
        queue=deployment.queue,
        task_id=job_id,
        serializer="pickle",
    )
    # One worker takes a queue's messages in order: once a later one is done, the
    # pickled one was seen.
    later = deployment.park({"seed": 2, "training": {"epochs": 1}})
    deployment.enqueue(later)
    assert deployment.wait_for_status(later, FINISHED).status is JobStatus.SUCCEEDED

    record = deployment.store.get(job_id)
    assert record is not None and record.status is JobStatus.QUEUED
    assert record.deliveries == 0
    assert not marker.exists()
