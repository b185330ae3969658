"""A worker's connection to Redis broken under a running job, with real prefork workers.

Celery (worker_cancel_long_running_tasks_on_connection_loss, core.queue) stops an
unacknowledged job whose broker connection broke and delivers it again. The test
breaks the connections of the worker running a job, the way a network blip or a
proxy restart would, by having Redis close them (CLIENT KILL of that process's
sockets only), more times than the job may be delivered: those runs were not the
job's doing, and it is not failed as a job that kills its worker.
"""

from __future__ import annotations

import psutil
import redis

from core.experiment.jobs import FINISHED, JobStatus
from tests.conftest import LONG_SPEC
from tests.worker.conftest import PreforkWorker, Workers, wait_for_record


def break_connections(client: redis.Redis, worker: PreforkWorker) -> int:
    """Have Redis close every connection of the worker's main process; how many."""
    port = int(client.connection_pool.connection_kwargs.get("port", 6379))
    local = {
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.Process(worker.process.pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port
    }
    broken = 0
    for entry in client.client_list():
        if entry["addr"] in local:
            broken += bool(client.client_kill_filter(_id=entry["id"]))
    return broken


def test_runs_cut_short_by_lost_connections_are_not_blamed_on_the_job(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    limit = workers.settings.max_deliveries  # 2
    job_id = deployment.submit(LONG_SPEC)
    seen = 0
    for _ in range(limit + 1):
        record = wait_for_record(
            deployment,
            job_id,
            lambda r, seen=seen: (
                r.status is JobStatus.RUNNING and r.deliveries > seen and r.epoch >= 1
            ),
            what=f"delivery {seen + 1} to train",
        )
        assert record.worker is not None
        assert break_connections(deployment.store.client, workers.live[record.worker["hostname"]])
        seen = record.deliveries

    # Delivered again past the limit, and running: the cut-short runs did not count.
    again = wait_for_record(
        deployment,
        job_id,
        lambda r: r.deliveries > seen and (r.status is JobStatus.RUNNING or r.status.finished),
        what="the job to be delivered again",
    )
    assert again.status is JobStatus.RUNNING, again.error
    interrupted = deployment.store.client.hget(
        deployment.store.plans.keys.job(job_id).record, "interrupted"
    )
    assert int(interrupted or 0) >= limit
    deployment.store.request_cancel(job_id)
    ended = deployment.wait_for_status(job_id, FINISHED)
    assert ended.status is JobStatus.CANCELLED, ended.error
