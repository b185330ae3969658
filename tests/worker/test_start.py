"""A delivery between its message and `running`, with real prefork workers.

A worker marks a job running before anything slow, so from then on a reaper covers
it. What can still go wrong before that, the workers of tests.worker.conftest are
made to do (tests.worker.fault_app): the store not answering the delivery's
`mark_running`, or the worker killed while it holds the message.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from core.experiment.jobs import FINISHED, JobStatus
from tests.conftest import wait_for
from tests.worker.conftest import (
    RECOVERY_SECONDS,
    Deployment,
    PreforkWorker,
    Workers,
    wait_for_record,
)
from worker.training import START_ATTEMPTS

QUICK: dict[str, Any] = {"seed": 4, "training": {"epochs": 3}}


def states(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    events = deployment.store.read_events(job_id, count=1000)
    return [json.loads(event.data) for event in events if event.type == "state"]


@pytest.mark.parametrize("reply", ["", "LOADING"], ids=["unreachable", "loading"])
def test_a_store_that_fails_the_start_sends_the_message_back_and_the_job_runs_once(
    workers: Workers, reply: str
) -> None:
    deployment = workers.deployment
    # Every try of the first delivery fails, wherever it lands: its message goes back.
    for worker in workers.live.values():
        for attempt in range(START_ATTEMPTS):
            (workers.faults(worker) / f"fail-{attempt}").write_text(reply)

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


def holder(workers: Workers, job_id: str) -> PreforkWorker:
    """The worker whose heartbeat says it holds the job's first message."""
    found: list[PreforkWorker] = []
    client = workers.deployment.store.client
    keys = workers.deployment.store.plans.keys

    def reported() -> bool:
        for worker in workers.live.values():
            report = client.get(keys.worker_jobs(worker.hostname)) or b""
            if f"{job_id}:0".encode() in report.split():  # type: ignore[union-attr]
                found[:] = [worker]
        return bool(found)

    wait_for(reported, timeout=RECOVERY_SECONDS, what=f"a worker to report holding {job_id}")
    return found[0]


def test_a_worker_killed_before_it_marks_its_job_running_loses_nothing(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    for worker in workers.live.values():  # each delivery waits before marking it running
        (workers.faults(worker) / "hold").touch()
    job_id = deployment.submit(QUICK)
    doomed = holder(workers, job_id)
    assert deployment.store.get(job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]

    workers.kill(doomed)
    killed_at = time.monotonic()
    for worker in workers.live.values():
        (workers.faults(worker) / "hold").unlink()
    record = wait_for_record(
        deployment,
        job_id,
        lambda r: r.status is not JobStatus.QUEUED,
        what=f"job {job_id} to start again",
        timeout=RECOVERY_SECONDS,
    )
    recovered_after = time.monotonic() - killed_at

    # Within a silence period (3 s) and a reap round (0.5 s), with room for the machine.
    assert recovered_after < RECOVERY_SECONDS, recovered_after
    assert record.dispatch == 1 and record.worker is not None
    assert record.worker["hostname"] != doomed.hostname
    done = deployment.wait_for_status(job_id, FINISHED)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.deliveries == 1
    [requeued] = [state for state in states(deployment, job_id) if state.get("requeued")]
    assert requeued["reason"] == f"its worker {doomed.hostname} was lost before it started the job"
