"""The Celery tasks for a study's children: train them like any job, then update the study.

A child trains exactly as `gradwatch.train` would train it, except that it
draws no PNGs when it ends (its plots are drawn on first request; the study
draws its own). Children that share a graph (core.experiment.grouping) are sent as
one group and trained side by side in it (core.engine.ensemble), each still started,
progressed and ended in the store as a job of its own. Then, whatever the
children's outcome, the worker brings the study up to date (worker.study_finish):
the worker that ran the last child draws the study's default plots and seals it
with them, so the first fetch is instant.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Sequence

from celery import Task

from core.queue.tasks import STUDY_CHILD_TASK, STUDY_GROUP_TASK
from core.settings import get_settings
from core.store.stores import StudyStore
from worker.celery_app import app
from worker.group_training import run_training_group
from worker.study_finish import finish_study
from worker.tasks import TrainingTask
from worker.training import run_training_job

logger = logging.getLogger(__name__)


@functools.cache
def study_store() -> StudyStore:
    """This process's study store, made on first use (after the fork, in a pool process)."""
    return StudyStore.from_settings(get_settings())


@app.task(name=STUDY_CHILD_TASK, bind=True, base=TrainingTask)
def train_study_child(self: Task, job_id: str, study_id: str) -> str | None:
    """Train job `job_id`, a child of study `study_id`, then bring the study up to date."""
    hostname = self.request.hostname or socket.gethostname()
    limits = getattr(self.request, "timelimit", None) or (None, None)
    status = run_training_job(
        job_id, hostname=hostname, soft_time_limit=limits[1], default_plots=False
    )
    _bring_up_to_date(study_id, by=hostname)
    return None if status is None else status.value


@app.task(name=STUDY_GROUP_TASK, bind=True, base=TrainingTask)
def train_study_group(self: Task, job_ids: Sequence[str], study_id: str) -> list[str | None]:
    """Train the children `job_ids` of study `study_id` side by side, then update the study."""
    hostname = self.request.hostname or socket.gethostname()
    limits = getattr(self.request, "timelimit", None) or (None, None)
    statuses = run_training_group(
        job_ids, study_id=study_id, hostname=hostname, soft_time_limit=limits[1]
    )
    _bring_up_to_date(study_id, by=hostname)
    return [None if status is None else status.value for status in statuses.values()]


def _bring_up_to_date(study_id: str, *, by: str) -> None:
    try:
        finish_study(study_store(), study_id, by=by)
    except Exception:
        # The children's outcomes are stored; the study catches up on its next read.
        logger.exception("study %s: could not be brought up to date", study_id)
