"""What a queued message says: the Celery task names, their kwargs, the dispatch header.

A job's record keeps the task (name and kwargs) that trains it, so a reaper can
send it again the same way (core.store.workers); the worker registers its tasks
under these names (worker.tasks, worker.studies) and the API sends by name
(core.queue.app), never importing the worker.

    gradwatch.train(job_id)                           a job
    gradwatch.train_study_child(job_id, study_id)     a study's child, then the study
    gradwatch.train_study_group(job_ids, study_id)    children sharing a graph, side by side
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TRAIN_TASK = "gradwatch.train"
STUDY_CHILD_TASK = "gradwatch.train_study_child"
# Several children of a study that share a graph, trained side by side (core.engine.ensemble).
# Only a first send uses it: each child's record keeps its own STUDY_CHILD_TASK, so a
# reaper sends a child of a lost group again on its own.
STUDY_GROUP_TASK = "gradwatch.train_study_group"

# A message names its dispatch in this header (kwargs stay as first sent, so every task's
# signature still fits); absent means 0, the first send.
DISPATCH_HEADER = "gradwatch_dispatch"


def training_task(job_id: str) -> dict[str, Any]:
    """The task (name and kwargs) that trains job `job_id`, as its record keeps it."""
    return {"name": TRAIN_TASK, "kwargs": {"job_id": job_id}}


def study_child_task(job_id: str, study_id: str) -> dict[str, Any]:
    """The task that trains job `job_id`, a child of study `study_id`, then updates the study."""
    return {"name": STUDY_CHILD_TASK, "kwargs": {"job_id": job_id, "study_id": study_id}}


def study_group_task(job_ids: Sequence[str], study_id: str) -> dict[str, Any]:
    """The task that trains the children `job_ids` of study `study_id` in one graph."""
    return {"name": STUDY_GROUP_TASK, "kwargs": {"job_ids": list(job_ids), "study_id": study_id}}


def task_job_ids(kwargs: Mapping[str, Any] | None) -> list[str]:
    """The jobs a task's kwargs name: its `job_id`, or a group's `job_ids`."""
    kwargs = kwargs or {}
    if "job_ids" in kwargs:
        return [str(job_id) for job_id in kwargs["job_ids"] or []]
    return [str(kwargs["job_id"])] if kwargs.get("job_id") else []
