"""Many jobs at once across two workers: each runs exactly once, nothing is left behind.

A small version of benchmarks/load.py (1,000 jobs) for the suite.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

from core.experiment.jobs import FINISHED, JobStatus
from core.settings import Settings
from core.store.keys import Keys
from tests.conftest import wait_for
from tests.worker.conftest import JOB_SECONDS, PreforkWorker

JOBS = 30


def tiny_spec(seed: int) -> dict[str, object]:
    return {"seed": seed, "dataset": {"n_samples": 64}, "training": {"epochs": 1}}


def test_jobs_posted_at_once_across_two_workers_each_run_once(
    start_prefork_worker: Callable[..., PreforkWorker], new_namespace: Callable[[], Settings]
) -> None:
    settings = new_namespace()
    workers = [
        start_prefork_worker(settings, hostname=f"{settings.namespace}-{n}@load") for n in (1, 2)
    ]
    deployment = workers[0].deployment
    ids = [deployment.submit(tiny_spec(seed)) for seed in range(JOBS)]

    def all_finished() -> bool:
        records = [deployment.store.get(job_id) for job_id in ids]
        return all(record is not None and record.status in FINISHED for record in records)

    wait_for(all_finished, timeout=JOB_SECONDS + JOBS * 5, what=f"{JOBS} jobs to finish")

    records = [deployment.store.get(job_id) for job_id in ids]
    assert all(r is not None and r.status is JobStatus.SUCCEEDED for r in records)
    assert all(r is not None and r.deliveries == 1 for r in records)
    for job_id in ids:
        events = deployment.store.read_events(job_id, count=1000)
        states = [json.loads(e.data)["status"] for e in events if e.type == "state"]
        assert states == ["queued", "running", "succeeded"], (job_id, states)
    by_worker = Counter(r.worker["hostname"] for r in records if r is not None and r.worker)
    assert set(by_worker) == {worker.hostname for worker in workers}, by_worker
    keys = Keys(settings.namespace)
    client = deployment.store.client
    wait_for(
        lambda: (
            client.llen(keys.celery_queue(deployment.queue)) == 0
            and client.hlen(keys.celery_prefix + "unacked") == 0
        ),
        timeout=10,
        what="the queue to drain",
    )
