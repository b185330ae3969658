"""The Celery configuration shared by the workers and anything else that sends.

Both sides build their `celery.Celery` from `celery_config(settings)`, so the
broker, serializer and transport options cannot drift apart. Messages are sent
by task name (core.queue.tasks), never importing the worker (nor TensorFlow).

A job's message is sent by the worker that claimed it from the dispatcher
(core.store.dispatch), to its own queue: `send_to_worker`, the task the unit
carries and its dispatch number in a message header. The claim put each job in
the outbox (core.store.outbox); the worker confirms it once sent, and a reaper
(worker.reaper) queues anew, as the next dispatch, what stays unconfirmed.
`send_dispatch` sends straight to a device queue, as an earlier release's API
did; the workers still take such messages.

Example:
    >>> app = make_celery(get_settings())
    >>> send_to_worker(app, hostname="cpu@host", claim=store.claim(queue="cpu", hostname=...))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery
from celery.utils import worker_direct

from core.experiment.spec import Device
from core.queue.tasks import DISPATCH_HEADER, TRAIN_TASK
from core.settings import Settings
from core.store.dispatch import Claim
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


def send_to_worker(app: Celery, *, hostname: str, claim: Claim) -> None:
    """Send the message of the unit `claim` to worker `hostname`'s own queue (Celery's
    worker-direct queue, which only that worker consumes: it claimed the unit)."""
    app.send_task(
        str(claim.task["name"]),
        kwargs=dict(claim.task["kwargs"]),
        queue=worker_direct(hostname),
        task_id=claim.message_id,
        headers={DISPATCH_HEADER: claim.dispatch},
    )


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
