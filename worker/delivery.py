"""Which delivery of a job a pool process runs: the dispatch its message belongs to,
the task to send it again with, and the fencing token the store handed it.

A job can be delivered more than once: Celery redelivers a message whose pool
process died, and a reaper (worker.reaper) sends a job again, as a new
dispatch, when its worker was lost. The store lets only the current dispatch
start the job (`mark_running(dispatch=...)`) and only the latest delivery write
to it (`delivery=token`), so a worker that was thought lost and comes back can
neither restart nor overwrite a job another worker has taken over.

Example:
    >>> delivery = JobDelivery.of_current_task(job_id)
    >>> record = store.mark_running(job_id, worker=worker, max_deliveries=3,
    ...                             dispatch=delivery.dispatch, task=delivery.task)
    >>> delivery.token = record.deliveries
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import current_task

from core.queue.tasks import DISPATCH_HEADER, study_child_task


@dataclass
class JobDelivery:
    """One delivery of job `job_id`; `token` is set once the store has started it."""

    job_id: str
    dispatch: int | None = None  # None: not from a Celery message (called directly)
    task: dict[str, Any] | None = None
    token: int | None = None

    @classmethod
    def of_current_task(cls, job_id: str) -> JobDelivery:
        """The delivery of the Celery task now running for `job_id` (task id = job id)."""
        task = current_task
        request = getattr(task, "request", None)
        if task is None or request is None or request.id != job_id:
            return cls(job_id)
        kwargs = dict(request.kwargs or {})
        return cls(job_id, _dispatch(request), {"name": task.name, "kwargs": kwargs})

    @classmethod
    def of_group_member(cls, job_id: str, study_id: str) -> JobDelivery:
        """Job `job_id`'s delivery in the group message now running (one message, several
        jobs of study `study_id`, each at the dispatch the message names).

        Its task is the one its record keeps, to train it alone: a reaper that sends
        it again sends it on its own.
        """
        request = getattr(current_task, "request", None)
        dispatch = _dispatch(request) if request is not None else None
        return cls(job_id, dispatch, study_child_task(job_id, study_id))


def _dispatch(request: Any) -> int:
    headers = getattr(request, "headers", None) or {}
    return int(request.get(DISPATCH_HEADER, None) or headers.get(DISPATCH_HEADER) or 0)
