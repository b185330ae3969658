"""A delivery between its message and `running`, with real prefork workers.

A worker marks a job running before anything slow, so from then on a reaper covers
it. What can still go wrong before that, the workers of tests.worker.conftest are
made to do (tests.worker.fault_app): the store not answering the delivery's
`mark_running`, or the worker killed while it holds the message.
"""

from __future__ import annotations

import json
from typing import Any

from core.jobs import FINISHED, JobStatus
from tests.worker.conftest import Deployment, Workers
from worker.training import START_ATTEMPTS

QUICK: dict[str, Any] = {"seed": 4, "training": {"epochs": 3}}


def states(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    events = deployment.store.read_events(job_id, count=1000)
    return [json.loads(event.data) for event in events if event.type == "state"]


def test_a_store_that_fails_the_start_sends_the_message_back_and_the_job_runs_once(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    # Every try of the first delivery fails, wherever it lands: its message goes back.
    for worker in workers.live.values():
        for attempt in range(START_ATTEMPTS):
            (workers.faults(worker) / f"fail-{attempt}").touch()

    job_id = deployment.submit(QUICK)
    record = deployment.wait_for_status(job_id, FINISHED)

    assert record.status is JobStatus.SUCCEEDED, record.error
    assert record.deliveries == 1 and record.dispatch == 0
    assert [state["status"] for state in states(deployment, job_id)] == [
        "queued",
        "running",
        "succeeded",
    ]
    emptied = [w for w in workers.live.values() if not any(workers.faults(w).iterdir())]
    assert emptied, "no delivery met the store's failures"
