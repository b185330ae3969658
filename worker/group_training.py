"""A group of a study's children trained side by side in one graph, in a pool process.

The children share a graph (core.experiment.grouping), so the engine trains them
as one ensemble (core.engine.ensemble); each still starts, progresses and ends in
the store as a job of its own, as worker.training does it for one job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded

from core.datasets.uploaded import DatasetDeleted
from core.experiment.hooks import TrainingCancelled
from core.experiment.jobs import JobStatus
from core.experiment.result import dumps_result
from core.settings import get_settings
from core.store.errors import is_store_unavailable
from core.store.records import JobRecord
from core.store.stores import JobStore
from worker.delivery import JobDelivery
from worker.failures import public_message
from worker.progress import JobProgressHook
from worker.training import (
    fail_job,
    job_store,
    name_worker,
    publish_pool_state,
    spec_of,
    start_job,
    store_success,
)

if TYPE_CHECKING:
    from core.engine.run import RunOutput
    from core.experiment.spec import ExperimentSpec

logger = logging.getLogger(__name__)


def run_training_group(
    job_ids: Sequence[str],
    *,
    study_id: str,
    hostname: str,
    soft_time_limit: float | None = None,
) -> dict[str, JobStatus | None]:
    """Train the study children `job_ids` side by side in one graph (core.engine.ensemble);
    record how each one ended (None for one that was not to run).

    Each child starts and ends in the store as it would alone, with its own
    delivery token; a child that is already running elsewhere, finished or
    cancelled is left out. Should the specs not share a graph after all (the API
    groups them with core.experiment.grouping), each part trains on its own.

    A child whose uploaded dataset was deleted fails with DatasetDeleted, naming it,
    and the rest train. (Members share a graph, and the graph's key holds the
    dataset's id, so they name one dataset: if it is gone, each of them fails so.)
    """
    store = job_store()
    statuses: dict[str, JobStatus | None] = dict.fromkeys(job_ids)
    started = []
    for job_id in job_ids:
        delivery = JobDelivery.of_group_member(job_id, study_id)
        record = start_job(store, delivery, hostname)
        if record is not None:
            started.append((delivery, record))
    if not started:
        return statuses
    try:
        _train_group(store, started, hostname, statuses)
    except SoftTimeLimitExceeded:
        limit = soft_time_limit or get_settings().job_soft_time_limit
        logger.warning("study %s: a group stopped at the soft time limit (%s s)", study_id, limit)
        message = f"the job ran longer than the time limit of {limit:g} s and was stopped"
        for delivery in _unfinished(started, statuses):
            statuses[delivery.job_id] = fail_job(store, delivery, "TimeLimitExceeded", message)
    except Exception as error:
        if is_store_unavailable(error):
            logger.warning(
                "study %s: a group lost the job store; a reaper will re-queue it", study_id
            )
            return statuses
        logger.exception("study %s: a group failed", study_id)
        for delivery in _unfinished(started, statuses):
            message = public_message(error)
            statuses[delivery.job_id] = fail_job(store, delivery, type(error).__name__, message)
    return statuses


def _unfinished(
    started: Sequence[tuple[JobDelivery, JobRecord]], statuses: Mapping[str, JobStatus | None]
) -> list[JobDelivery]:
    """The started children that no part of the group has ended yet."""
    return [delivery for delivery, _ in started if statuses[delivery.job_id] is None]


def _train_group(
    store: JobStore,
    started: Sequence[tuple[JobDelivery, JobRecord]],
    hostname: str,
    statuses: dict[str, JobStatus | None],
) -> None:
    """Train the started children, recording each one's end in `statuses` as it ends, so
    that a part that ended stays recorded when a later part is stopped or fails."""
    from core.engine import run as engine  # TensorFlow: only here, in the pool process
    from core.experiment.grouping import ensemble_groups

    members: list[JobDelivery] = []
    specs: list[ExperimentSpec] = []
    for delivery, record in started:
        if not name_worker(store, delivery, record, hostname):
            continue
        try:
            spec = spec_of(store, record)
        except DatasetDeleted as gone:
            # This member's data alone is missing: it fails saying so, the others train.
            logger.info("job %s: %s", delivery.job_id, gone)
            statuses[delivery.job_id] = fail_job(store, delivery, "DatasetDeleted", str(gone))
            continue
        members.append(delivery)
        specs.append(spec)
    for group in ensemble_groups(specs):
        deliveries = [members[index] for index in group]
        hooks = [[JobProgressHook(store, d.job_id, delivery=d.token)] for d in deliveries]
        began = time.perf_counter()
        if len(group) == 1:
            outcomes: list[RunOutput | TrainingCancelled] = []
            try:
                outcomes.append(engine.run_experiment(specs[group[0]], hooks=hooks[0]))
            except TrainingCancelled as cancel:
                outcomes.append(cancel)
        else:
            outcomes = engine.run_ensemble([specs[index] for index in group], hooks)
        trained_in = time.perf_counter() - began
        publish_pool_state()
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            if isinstance(outcome, TrainingCancelled):
                stopped = store.mark_cancelled(delivery.job_id, delivery=delivery.token)
                statuses[delivery.job_id] = JobStatus.CANCELLED if stopped else None
            else:
                result_json = dumps_result(outcome.result)
                statuses[delivery.job_id] = store_success(
                    store, delivery, outcome, result_json, {}, times=(trained_in, 0.0)
                )
