"""The Celery task: a thin adapter from a queued job id to `worker.training`."""

from __future__ import annotations

import logging
import socket
from typing import Any

from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import worker_process_init

from core.queue.tasks import TRAIN_TASK, task_job_ids
from core.settings import get_settings
from core.store.errors import is_store_unavailable
from core.store.stores import JobStore
from worker.celery_app import app
from worker.failures import public_message
from worker.heartbeat import note_interrupted
from worker.training import run_training_job, start_warm_up

logger = logging.getLogger(__name__)


class TrainingTask(Task):
    """Records in the store the failures that happen outside the task body."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Fail the job when the body could not: chiefly the hard time limit.

        At the hard limit the pool process is killed, so this runs in the
        worker's main process; the job (each job of a group) must still end with a
        reason.
        """
        job_ids = task_job_ids(kwargs) or [args[0] if args else task_id]
        if is_store_unavailable(exc):
            # The store was unreachable: the job stays running in its record until a
            # reaper, seeing this worker no longer runs it, re-queues it.
            logger.warning("jobs %s: the job store was unreachable: %s", job_ids, exc)
            return
        if isinstance(exc, TimeLimitExceeded):
            # Celery raises it with the limit that struck.
            hard_limit = exc.args[0] if exc.args else get_settings().job_time_limit
            error_type = "TimeLimitExceeded"
            message = (
                f"the job ran past the hard time limit of {hard_limit:g} s "
                "and its process was killed"
            )
        else:
            error_type, message = type(exc).__name__, public_message(exc)
        store = JobStore.from_settings(get_settings())
        try:
            for job_id in job_ids:
                store.mark_failed(job_id, error_type=error_type, message=message)
        finally:
            store.close()

    def on_retry(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Celery stopped the run because the worker lost its connection to Redis.

        With worker_cancel_long_running_tasks_on_connection_loss (core.queue) Celery,
        in the worker's main process, terminates an unacknowledged job whose broker
        connection broke and announces it as a retry; the message is delivered again.
        The tasks never retry themselves, so this is the only way here.
        """
        for job_id in task_job_ids(kwargs) or [task_id]:
            logger.warning("job %s: stopped by Celery on a lost connection to Redis", job_id)
            note_interrupted(job_id)


@app.task(name=TRAIN_TASK, bind=True, base=TrainingTask)
def train(self: Task, job_id: str) -> str | None:
    """Train job `job_id` (its spec is in the job store) and record the outcome."""
    hostname = self.request.hostname or socket.gethostname()
    status = run_training_job(
        job_id, hostname=hostname, soft_time_limit=_soft_time_limit(self.request)
    )
    return None if status is None else status.value


def _soft_time_limit(request: Any) -> float | None:
    """The soft limit the message asked for; None where the deployment's applies."""
    limits = getattr(request, "timelimit", None) or (None, None)
    return limits[1]


@worker_process_init.connect
def _warm_up_pool_process(**_: Any) -> None:
    start_warm_up()
