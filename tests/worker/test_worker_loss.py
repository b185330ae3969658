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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.jobs import FINISHED, JobRecord, JobStatus
from core.keys import Keys
from core.queue import celery_config, make_celery
from core.settings import Settings
from tests.conftest import wait_for
from tests.worker.conftest import JOB_SECONDS, Deployment, PreforkWorker

# Reaping in seconds rather than the production minute.
FAST_REAPING = {
    "GRADWATCH_HEARTBEAT_SECONDS": "0.5",
    "GRADWATCH_WORKER_SILENT_SECONDS": "3",
    "GRADWATCH_REAP_INTERVAL_SECONDS": "0.5",
    "GRADWATCH_MAX_DELIVERIES": "2",
}
# Silence, one reap round, the re-sent message and mark_running, with room for a
# loaded 2-core machine: the bound a recovered job must start again within.
RECOVERY_SECONDS = 30.0
SPEC: dict[str, Any] = {"seed": 7, "training": {"epochs": 150}}


@dataclass
class Workers:
    """Prefork workers of one namespace, started and replaced on demand."""

    settings: Settings
    start_worker: Callable[..., PreforkWorker]
    live: dict[str, PreforkWorker] = field(default_factory=dict)
    started: int = 0

    @property
    def deployment(self) -> Deployment:
        return next(iter(self.live.values())).deployment

    def add(self) -> PreforkWorker:
        self.started += 1
        hostname = f"{self.settings.namespace}-{self.started}@loss"
        worker = self.start_worker(self.settings, hostname=hostname, **FAST_REAPING)
        self.live[hostname] = worker
        return worker

    def running(self, job_id: str, delivery: int) -> tuple[PreforkWorker, JobRecord]:
        """The worker running delivery `delivery` of the job, once it runs."""
        record = wait_for_record(
            self.deployment,
            job_id,
            lambda r: r.status is JobStatus.RUNNING and r.deliveries == delivery,
            what=f"delivery {delivery} of job {job_id} to run",
        )
        assert record.worker is not None
        return self.live[record.worker["hostname"]], record

    def kill(self, worker: PreforkWorker) -> None:
        worker.kill_group()
        del self.live[worker.hostname]


def wait_for_record(
    deployment: Deployment,
    job_id: str,
    condition: Callable[[JobRecord], bool],
    *,
    what: str,
    timeout: float = JOB_SECONDS,
) -> JobRecord:
    found: list[JobRecord] = []

    def holds() -> bool:
        record = deployment.store.get(job_id)
        assert record is not None, f"job {job_id} vanished"
        found[:] = [record]
        return condition(record)

    wait_for(holds, timeout=timeout, what=what)
    return found[0]


def restore_unacked_messages(settings: Settings) -> None:
    """What a Celery client does once the visibility timeout has passed, done now."""
    expired = make_celery(settings)
    options = celery_config(settings)["broker_transport_options"]
    expired.conf.broker_transport_options = {**options, "visibility_timeout": 0}
    with expired.connection_for_write() as connection:
        connection.default_channel.qos.restore_visible(num=10)
    expired.close()


def requeue_events(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    events = deployment.store.read_events(job_id, count=1000)
    return [json.loads(e.data) for e in events if e.type == "state" and "requeued" in e.data]


@pytest.fixture(scope="module")
def workers(
    start_prefork_worker: Callable[..., PreforkWorker], new_namespace: Callable[[], Settings]
) -> Iterator[Workers]:
    """Two fast-reaping prefork workers on a namespace of their own."""
    settings = new_namespace().model_copy(
        update={"max_deliveries": 2, "worker_silent_seconds": 3.0, "heartbeat_seconds": 0.5}
    )
    pair = Workers(settings, start_prefork_worker)
    pair.add()
    pair.add()
    yield pair


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
    assert deployment.store.unsent_requeues() == []

    # An hour on, kombu restores the killed worker's unacked message: a no-op now.
    keys = Keys(workers.settings.namespace)
    client = deployment.store.client
    assert client.hlen(keys.celery_prefix + "unacked") == 1
    restore_unacked_messages(workers.settings)
    wait_for(
        lambda: (
            client.llen(keys.celery_queue(deployment.queue)) == 0
            and client.hlen(keys.celery_prefix + "unacked") == 0
        ),
        timeout=30,
        what="the restored message to be consumed",
    )
    assert deployment.store.get(job_id) == record
    workers.add()  # back to two


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
