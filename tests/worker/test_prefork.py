"""What only the production pool does: prefork, one pool process kept across jobs.

Time limits are enforced, a pool process killed mid-job is replaced and its job
delivered again (until the store's delivery limit fails it), the main process
never maps TensorFlow, and a worker killed outright leaves its job unacked in
Redis, from where it is delivered again once its visibility timeout passes.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import psutil
import pytest
from celery.utils import worker_direct

from core.experiment.jobs import FINISHED, JobStatus
from core.experiment.studies import StudyRequest, expand_study
from core.plotting.catalog import EXPERIMENT_PLOTS
from core.queue.app import celery_config, make_celery
from core.queue.tasks import STUDY_GROUP_TASK, study_group_task
from core.settings import Settings
from core.store.keys import Keys
from core.store.records import StudyRecord
from core.store.stores import StudyStore
from tests.conftest import LONG_SPEC, MEDIUM_SPEC, WORST_SPEC, wait_for
from tests.worker.conftest import (
    JOB_SECONDS,
    QUICK_SPEC,
    PreforkWorker,
    loads_tensorflow,
    pool_processes,
)


def test_the_pool_process_trains_and_the_main_process_never_loads_tensorflow(
    prefork_worker: PreforkWorker,
) -> None:
    deployment = prefork_worker.deployment
    first = deployment.submit(QUICK_SPEC)
    assert deployment.wait_for_status(first, FINISHED).status is JobStatus.SUCCEEDED
    [pool_before] = pool_processes(prefork_worker)
    second = deployment.submit(QUICK_SPEC)

    record = deployment.wait_for_status(second, FINISHED)

    assert record.status is JobStatus.SUCCEEDED, record.error
    assert record.worker is not None and record.worker["hostname"] == prefork_worker.hostname
    # The same pool process ran both: its compiled graphs outlive a job.
    assert pool_processes(prefork_worker) == [pool_before]
    assert loads_tensorflow(pool_before)
    assert not loads_tensorflow(prefork_worker.process.pid)
    # Beside it, its drawing helper (worker.drawing), which loads no TensorFlow either; the
    # PNGs the two drew are the ones the API would draw from the stored result.
    [helper] = psutil.Process(pool_before).children()
    assert helper.cmdline()[-2:] == ["-m", "worker.drawing"]
    assert not loads_tensorflow(helper.pid)
    result = json.loads(deployment.store.get_result(second).content or b"null")
    for name in ("weights", "gradients"):
        stored = deployment.store.get_plot(second, field=name).png
        assert stored == EXPERIMENT_PLOTS.render(name, result), name


def test_a_worker_counts_as_live_once_its_pool_process_has_loaded_the_engine(
    start_prefork_worker: Callable[..., PreforkWorker], new_namespace: Callable[[], Settings]
) -> None:
    worker = start_prefork_worker(new_namespace())  # returns once it is live

    [pool] = pool_processes(worker)
    assert loads_tensorflow(pool)
    job_id = worker.deployment.submit(QUICK_SPEC)
    record = worker.deployment.wait_for_status(job_id, FINISHED)
    assert record.status is JobStatus.SUCCEEDED, record.error


def test_the_soft_time_limit_fails_the_job_with_the_reason(
    prefork_worker: PreforkWorker,
) -> None:
    deployment = prefork_worker.deployment
    job_id = deployment.submit(LONG_SPEC, soft_time_limit=2, time_limit=60)

    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.FAILED
    assert record.error == {
        "type": "TimeLimitExceeded",
        "message": "the job ran longer than the time limit of 2 s and was stopped",
    }
    # The pool process survives a soft limit and takes the next job.
    follow_up = deployment.submit(QUICK_SPEC)
    assert deployment.wait_for_status(follow_up, FINISHED).status is JobStatus.SUCCEEDED


def test_the_soft_time_limit_stops_the_slowest_spec_within_its_epoch(
    prefork_worker: PreforkWorker,
) -> None:
    deployment = prefork_worker.deployment
    # Without a pause between its epoch's calls the hard limit would kill its process.
    job_id = deployment.submit(WORST_SPEC, soft_time_limit=3, time_limit=90)

    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.FAILED
    assert record.error is not None
    message = "the job ran longer than the time limit of 3 s and was stopped"
    assert record.error["message"] == message


def test_a_cancel_then_the_soft_time_limit_stop_a_studys_group_within_its_epoch(
    prefork_worker: PreforkWorker,
) -> None:
    deployment = prefork_worker.deployment
    studies = StudyStore(deployment.store.client, deployment.store.plans)
    [pool] = pool_processes(prefork_worker)

    def send_group(**limits: float) -> StudyRecord:
        """Two seeds of the slowest spec share a graph: one group, trained side by side as
        an ensemble whose one epoch would take hours. Made where no worker claims it, then
        sent as the dispatcher sends a group, with `limits` (send_task's) of its own."""
        plan = expand_study(StudyRequest.model_validate({"base": WORST_SPEC, "seeds": 2}))
        study = studies.create_study(plan=plan, queues=[deployment.parking] * 2, plots=[])
        kwargs = study_group_task(study.child_ids, study.id)["kwargs"]
        deployment.celery.send_task(
            STUDY_GROUP_TASK, kwargs=kwargs, queue=deployment.queue, **limits
        )
        return study

    # A cancel: each child stops between its epoch's calls (the first group also traces
    # the ensemble's graph, so the second trains at once).
    cancelled = send_group()
    for child_id in cancelled.child_ids:
        deployment.wait_for_status(child_id, {JobStatus.RUNNING})
    assert studies.cancel(cancelled.id) is not None
    for child_id in cancelled.child_ids:
        stopped = deployment.wait_for_status(child_id, FINISHED)
        assert stopped.status is JobStatus.CANCELLED and stopped.error is None
    # The soft time limit: without a pause between the epoch's calls, the hard one would
    # kill the pool process.
    limited = send_group(soft_time_limit=3, time_limit=90)

    children = [deployment.wait_for_status(child, FINISHED) for child in limited.child_ids]

    message = "the job ran longer than the time limit of 3 s and was stopped"
    for child in children:
        assert child.status is JobStatus.FAILED, child.to_public()
        assert child.error == {"type": "TimeLimitExceeded", "message": message}
        assert child.epoch == 0 and child.worker is not None  # stopped inside its one epoch
    for study, status in ((cancelled, JobStatus.CANCELLED), (limited, JobStatus.FAILED)):
        ended = studies.get_study(study.id, seal_after=0)
        assert ended is not None and ended.status is status
        assert [child.status for child in ended.children] == [status.value] * 2
    assert pool_processes(prefork_worker) == [pool]  # the soft limit, not the hard one


@pytest.mark.slow
def test_a_job_that_keeps_killing_its_pool_process_fails_after_max_deliveries(
    prefork_worker: PreforkWorker,
) -> None:
    deployment = prefork_worker.deployment
    job_id = deployment.submit(LONG_SPEC)
    for delivery in (1, 2):
        record = deployment.wait_until_training(job_id)
        assert record.deliveries == delivery
        [pool] = pool_processes(prefork_worker)
        os.kill(pool, signal.SIGKILL)  # as the kernel's OOM killer would

        def replaced(delivery: int = delivery) -> bool:
            record = deployment.store.get(job_id)
            assert record is not None
            return record.deliveries > delivery or record.status.finished

        wait_for(replaced, timeout=JOB_SECONDS, what=f"delivery {delivery + 1}")

    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error["type"] == "TooManyDeliveries"
    assert record.deliveries == 3
    assert prefork_worker.process.poll() is None  # the worker itself lives on


@pytest.mark.slow
def test_a_worker_killed_outright_leaves_its_job_to_be_delivered_again(
    start_prefork_worker: Callable[..., PreforkWorker], new_namespace: Callable[[], Settings]
) -> None:
    settings = new_namespace()
    doomed = start_prefork_worker(settings)
    deployment = doomed.deployment
    job_id = deployment.submit(MEDIUM_SPEC)
    deployment.wait_until_training(job_id)

    doomed.kill_group()

    # The message waits in Celery's unacked set for the visibility timeout (an hour
    # and more in production); a client whose timeout has passed restores it.
    keys = Keys(settings.namespace)
    unacked = keys.celery_prefix + "unacked"  # kombu's hash of delivered, unacked messages
    assert deployment.store.client.hlen(unacked) == 1
    expired = make_celery(settings)
    options = celery_config(settings)["broker_transport_options"]
    expired.conf.broker_transport_options = {**options, "visibility_timeout": 0}
    with expired.connection_for_write() as connection:
        connection.default_channel.qos.restore_visible(num=10)
    expired.close()
    # Back to the queue it came from: the worker's own, where its claims arrive.
    own_queue = keys.celery_queue(worker_direct(doomed.hostname).name)
    assert deployment.store.client.llen(own_queue) == 1

    start_prefork_worker(settings)  # the same hostname: it consumes that queue again
    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.SUCCEEDED, record.error
    assert record.deliveries == 2
