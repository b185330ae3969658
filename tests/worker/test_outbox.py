"""A job stored but never sent still runs, exactly once: the outbox, with real workers.

Every new job waits in the store's outbox until its sender confirms its message went
out. Here the sender never does (an API process that died after storing it), or the
API cannot reach the queue at all (its broker connection points at a closed port):
the client still gets 202 and the job, and a reaper of the fast-reaping workers
(tests.worker.conftest) sends it a silence period on, or a retry with the same
Idempotency-Key does at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx

from api.main import create_app
from core.jobs import FINISHED, JobStatus, new_job_id
from core.queue import make_celery
from core.settings import Settings
from tests.conftest import free_port
from tests.worker.conftest import RECOVERY_SECONDS, Deployment, Workers

QUICK: dict[str, Any] = {"seed": 3, "training": {"epochs": 3}}


def post(
    settings: Settings, body: dict[str, Any], *, queue_reachable: bool, **headers: str
) -> httpx.Response:
    """POST /v1/experiments to the real app, started as a server starts it; without
    `queue_reachable`, its Celery client's broker is a port nobody listens on."""
    app = create_app(settings)

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            if queue_reachable:
                return await client.post("/v1/experiments", json=body, headers=headers)
            nowhere = f"redis://127.0.0.1:{free_port()}/0"
            unreachable = make_celery(settings.model_copy(update={"redis_url": nowhere}))
            services = app.state.services
            app.state.services = dataclasses.replace(services, celery=unreachable)
            try:
                return await client.post("/v1/experiments", json=body, headers=headers)
            finally:
                app.state.services = services
                unreachable.close()

    return asyncio.run(request())


def states(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    events = deployment.store.read_events(job_id, count=1000)
    return [json.loads(event.data) for event in events if event.type == "state"]


def assert_ran_once(deployment: Deployment, job_id: str) -> None:
    record = deployment.wait_for_status(job_id, FINISHED)
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert record.deliveries == 1
    assert [state["status"] for state in states(deployment, job_id)].count("running") == 1
    assert (job_id, record.dispatch) not in deployment.store.unsent_dispatches()


def test_a_job_stored_but_never_sent_is_sent_by_a_reaper_and_runs_once(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    job_id = deployment.create(QUICK)  # stored, then its API process died: nothing sent

    record = deployment.wait_for_status(
        job_id, {JobStatus.RUNNING, *FINISHED}, timeout=RECOVERY_SECONDS
    )

    assert record.dispatch == 1
    assert_ran_once(deployment, job_id)
    [requeued] = [state for state in states(deployment, job_id) if state.get("requeued")]
    assert requeued["reason"] == "its message was not confirmed sent"


def test_a_job_the_api_could_not_send_is_accepted_and_runs_once(workers: Workers) -> None:
    deployment = workers.deployment

    response = post(workers.settings, QUICK, queue_reachable=False)

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and response.headers["location"].endswith(job["id"])
    assert job["error"] is None and "111" not in response.text  # no broker error shown
    assert_ran_once(deployment, job["id"])
    assert deployment.store.get(job["id"]).dispatch == 1  # type: ignore[union-attr]


def test_a_retry_after_a_failed_send_gets_the_same_job_and_it_runs_once(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    key = {"Idempotency-Key": f"outbox-{new_job_id()}"}
    first = post(workers.settings, QUICK, queue_reachable=False, **key)
    assert first.status_code == 202, first.text

    again = post(workers.settings, QUICK, queue_reachable=True, **key)

    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert_ran_once(deployment, first.json()["id"])
    # The retry's own replay, once the job ran, sends nothing more.
    third = post(workers.settings, QUICK, queue_reachable=True, **key)
    assert third.json()["id"] == first.json()["id"] and third.json()["status"] == "succeeded"
    assert_ran_once(deployment, first.json()["id"])
