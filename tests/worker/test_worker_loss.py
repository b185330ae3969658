"""A whole worker lost mid-job, with real prefork workers on the real Redis.

The workers here beat every 0.5 s and count as lost after 3 s of silence (30 s in
production), so a reaper re-queues a lost worker's job within seconds. Two workers
share a namespace and a queue: whichever takes a job is the one the test kills
(SIGKILL of its process group: the main process and its pool process together), or
stops (SIGSTOP, as a network partition would silence it) and lets come back.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from core.experiment.jobs import FINISHED, JobStatus
from core.queue.app import celery_config, make_celery
from core.settings import Settings
from core.store.keys import Keys
from tests.conftest import MEDIUM_SPEC, wait_for
from tests.worker.conftest import (
    RECOVERY_SECONDS,
    Deployment,
    Workers,
    wait_for_record,
)

SPEC: dict[str, Any] = MEDIUM_SPEC  # killed mid-run, then awaited


def restore_unacked_messages(settings: Settings) -> None:
    """What a Celery client does once the visibility timeout has passed, done now."""
    expired = make_celery(settings)
    options = celery_config(settings)["broker_transport_options"]
    expired.conf.broker_transport_options = {**options, "visibility_timeout": 0}
    with expired.connection_for_write() as connection:
        connection.default_channel.qos.restore_visible(num=10)
    expired.close()


def unacked_messages_of(deployment: Deployment, job_id: str) -> int:
    """Messages of the job delivered to a worker and not acknowledged (kombu's hash)."""
    unacked = Keys(deployment.settings.namespace).celery_prefix + "unacked"
    messages = deployment.store.client.hvals(unacked)
    return sum(job_id.encode() in message for message in messages)  # type: ignore[union-attr]


def requeue_events(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    events = deployment.store.read_events(job_id, count=1000)
    return [json.loads(e.data) for e in events if e.type == "state" and "requeued" in e.data]


def test_a_job_whose_worker_is_killed_completes_on_another(workers: Workers) -> None:
    deployment = workers.deployment
    job_id = deployment.submit(SPEC)
    doomed, _ = workers.running(job_id, delivery=1)

    workers.kill(doomed)
    killed_at = time.monotonic()
    survivor, _ = workers.running(job_id, delivery=2)
    restarted_after = time.monotonic() - killed_at
    record = deployment.wait_for_status(job_id, FINISHED)

    assert restarted_after < RECOVERY_SECONDS
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert record.worker is not None and record.worker["hostname"] == survivor.hostname
    assert record.deliveries == 2
    [requeued] = requeue_events(deployment, job_id)
    assert requeued["dispatch"] == 1
    assert requeued["reason"].startswith(f"its worker {doomed.hostname} went silent")
    assert deployment.store.unsent_dispatches() == []

    # An hour on, kombu restores the killed worker's unacked message: a no-op now.
    keys = Keys(workers.settings.namespace)
    client = deployment.store.client
    assert unacked_messages_of(deployment, job_id) == 1
    restore_unacked_messages(workers.settings)
    wait_for(
        lambda: (
            client.llen(keys.celery_queue(deployment.queue)) == 0
            and unacked_messages_of(deployment, job_id) == 0
        ),
        timeout=30,
        what="the restored message to be consumed",
    )
    assert deployment.store.get(job_id) == record


def test_a_partitioned_worker_that_comes_back_cannot_overwrite(workers: Workers) -> None:
    deployment = workers.deployment
    job_id = deployment.submit(SPEC)
    partitioned, _ = workers.running(job_id, delivery=1)
    wait_for_record(deployment, job_id, lambda r: r.epoch >= 1, what="the first epoch")

    os.killpg(partitioned.process.pid, signal.SIGSTOP)
    try:
        other, _ = workers.running(job_id, delivery=2)
        record = deployment.wait_for_status(job_id, FINISHED)
    finally:
        os.killpg(partitioned.process.pid, signal.SIGCONT)
    assert record.status is JobStatus.SUCCEEDED, record.error

    # Back, the first worker finds its delivery superseded at its next epoch and stops;
    # it then takes new work as usual.
    follow_up = [deployment.submit({"seed": seed, "training": {"epochs": 3}}) for seed in (1, 2)]
    for job in follow_up:
        assert deployment.wait_for_status(job, FINISHED).status is JobStatus.SUCCEEDED
    after = deployment.store.get(job_id)
    assert after == record  # not a field written by the stale delivery
    assert record.worker is not None and record.worker["hostname"] == other.hostname
    assert partitioned.process.poll() is None


def test_a_job_that_kills_every_worker_it_meets_fails_after_max_deliveries(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    job_id = deployment.submit(SPEC)
    for delivery in (1, 2):  # max_deliveries is 2
        victim, _ = workers.running(job_id, delivery=delivery)
        workers.kill(victim)  # as the kernel's OOM killer would, every time
    assert not workers.live
    workers.add()  # its reaper finds the job lost on its last delivery

    record = deployment.wait_for_status(job_id, FINISHED, timeout=RECOVERY_SECONDS + 60)

    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error["type"] == "TooManyDeliveries"
    assert record.error["message"].startswith("delivered 2 times, the limit, and its worker")
    assert record.deliveries == 2
    assert len(requeue_events(deployment, job_id)) == 1
