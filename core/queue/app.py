"""The Celery configuration shared by the worker and the API's enqueuing client.

Both sides build their `celery.Celery` from `celery_config(settings)`, so the
broker, serializer and transport options cannot drift apart. The API enqueues
by task name (core.queue.tasks) and never imports the worker (nor TensorFlow).

Every message is sent with `send_dispatch`: the task and kwargs the job's record
keeps, its dispatch number in a message header. The job store puts each dispatch
in an outbox as it makes it (core.store.outbox); the sender confirms it once sent,
and a reaper (worker.reaper) sends anew, as the next dispatch, what stays
unconfirmed: a job the API stored but could not send, or whose API process died
in between, still runs.

Example:
    >>> app = Celery("gradwatch-api")
    >>> app.conf.update(celery_config(get_settings()))
    >>> send_dispatch(app, job_id="01J...", queue="cpu", dispatch=0, task=training_task(...))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from core.experiment.spec import Device
from core.queue.tasks import DISPATCH_HEADER, TRAIN_TASK
from core.settings import Settings
from core.store.keys import Keys

# Unacknowledged messages are redelivered after this many seconds; it must exceed
# the longest job, or a healthy long job would be delivered twice.
MIN_VISIBILITY_TIMEOUT = 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for `settings`' deployment: Redis broker, JSON only, late acks."""
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        # A worker rides out a Redis outage of any length, reconnecting by itself.
        "broker_connection_max_retries": None,
        "broker_transport_options": {
            "global_keyprefix": Keys(settings.namespace).celery_prefix,
            "visibility_timeout": max(MIN_VISIBILITY_TIMEOUT, 2 * settings.job_time_limit),
            # A broker that stops answering without closing the connection must not
            # hold a publish (an API request) or a worker forever; BRPOP waits 1 s.
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
        # The job store, not Celery's result backend, is the truth about a job.
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # A job survives a killed worker: acknowledged only once done, redelivered if the
        # worker dies; the job store counts deliveries so a job that kills workers stops.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A job whose broker connection broke cannot be acknowledged any more, and kombu
        # puts its message back: Celery stops it rather than let it run twice. Its worker
        # tells the store (worker.tasks.TrainingTask.on_retry), so such runs do not
        # count against max_deliveries as a job that kills its worker would.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": settings.job_soft_time_limit,
        "task_time_limit": settings.job_time_limit,
        "task_default_queue": settings.queue_for(Device.CPU),
        "task_create_missing_queues": True,
    }


def make_celery(settings: Settings, main: str = "gradwatch") -> Celery:
    """A Celery app configured for `settings`' deployment."""
    app = Celery(main)
    app.conf.update(celery_config(settings))
    return app


def send_training(app: Celery, *, job_id: str, queue: str) -> None:
    """Send the first message of job `job_id` on `queue` (as send_dispatch does with
    dispatch 0 and its training task); the Celery task id is the job id."""
    app.send_task(TRAIN_TASK, kwargs={"job_id": job_id}, queue=queue, task_id=job_id)


def send_dispatch(
    app: Celery, *, job_id: str, queue: str, dispatch: int, task: Mapping[str, Any] | None
) -> None:
    """Send dispatch `dispatch` of job `job_id` to `queue`.

    `task` is the name and kwargs the job's record keeps (`core.queue.tasks.training_task`,
    or `study_child_task`: a study's child keeps its study); without it, plain training.
    """
    name, kwargs = TRAIN_TASK, {"job_id": job_id}
    if task:
        name, kwargs = str(task["name"]), dict(task["kwargs"])
    app.send_task(
        name, kwargs=kwargs, queue=queue, task_id=job_id, headers={DISPATCH_HEADER: dispatch}
    )
