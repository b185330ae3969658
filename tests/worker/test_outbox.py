"""A job stored but never sent still runs, exactly once: the dispatcher and the outbox,
with real workers.

The API sends nothing: a job waits on its queue's dispatcher from the step that
stores it, so an API process that dies right after storing loses nothing. A worker
that claims a unit writes it to the outbox and to its report, then sends the message
to itself; here a "worker" claims and never sends (its claiming thread died), or
claims, sends nowhere and falls silent (its process died), and a reaper of the
fast-reaping workers (tests.worker.conftest) queues the job again a silence period on.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from api.main import create_app
from core.experiment.jobs import FINISHED, JobStatus, new_job_id
from core.experiment.studies import StudyRequest, expand_study
from core.plotting.catalog import planned_study_plots
from core.settings import Settings
from core.store.stores import StudyStore, plans_from_settings
from tests.conftest import wait_for
from tests.worker.conftest import JOB_SECONDS, RECOVERY_SECONDS, Deployment, Workers

QUICK: dict[str, Any] = {"seed": 3, "training": {"epochs": 3}}
# Two short children: two activations, 3 epochs on 200 points.
STUDY: dict[str, Any] = {
    "base": {"seed": 5, "dataset": {"n_samples": 200}, "training": {"epochs": 3}},
    "axes": {"model.activation": ["tanh", "relu"]},
}
GHOST = "ghost@outbox"


def post(
    settings: Settings, body: dict[str, Any], *, path: str = "/v1/experiments", **headers: str
) -> httpx.Response:
    """POST to the real app, started as a server starts it."""
    app = create_app(settings)

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            return await client.post(path, json=body, headers=headers)

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


def requeue_reasons(deployment: Deployment, job_id: str) -> list[str]:
    return [state["reason"] for state in states(deployment, job_id) if state.get("requeued")]


def test_a_job_stored_runs_once_without_any_message_from_its_api(workers: Workers) -> None:
    deployment = workers.deployment
    job_id = deployment.create(QUICK)  # stored, then its API process died: nothing sent

    assert_ran_once(deployment, job_id)
    assert deployment.store.get(job_id).dispatch == 0  # type: ignore[union-attr]
    assert requeue_reasons(deployment, job_id) == []


def ghost_claims(deployment: Deployment, *, beating: bool) -> str:
    """A job that worker GHOST claimed (the live workers never saw it: it waited on a
    queue they do not serve, then moved to theirs); with `beating`, GHOST beat once."""
    job_id = deployment.park(QUICK)
    store = deployment.store
    if beating:
        store.record_heartbeat(queue=deployment.queue, hostname=GHOST)
    claim = store.claim(queue=deployment.parking, hostname=GHOST)
    assert claim is not None and claim.jobs == [(job_id, 0)]
    # Queued again, it waits where the live workers claim.
    store.client.hset(store.plans.keys.job(job_id).record, "queue", deployment.queue)
    return job_id


def test_a_claim_never_sent_is_queued_again_by_a_reaper_and_runs_once(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    # Its claiming thread died before sending: nothing confirmed.
    job_id = ghost_claims(deployment, beating=False)

    record = deployment.wait_for_status(
        job_id, {JobStatus.RUNNING, *FINISHED}, timeout=RECOVERY_SECONDS
    )

    assert record.dispatch == 1
    assert_ran_once(deployment, job_id)
    assert requeue_reasons(deployment, job_id) == ["its message was not confirmed sent"]


def test_a_claim_whose_worker_died_before_starting_it_runs_once(workers: Workers) -> None:
    deployment = workers.deployment
    # It sent the message to its own queue, confirmed, then died.
    job_id = ghost_claims(deployment, beating=True)
    deployment.store.confirm_dispatch(job_id, dispatch=0)

    record = deployment.wait_for_status(
        job_id, {JobStatus.RUNNING, *FINISHED}, timeout=RECOVERY_SECONDS
    )

    assert record.dispatch == 1
    assert_ran_once(deployment, job_id)
    reason = f"its worker {GHOST} was lost before it started the job"
    assert requeue_reasons(deployment, job_id) == [reason]


def test_a_retry_gets_the_same_job_and_it_runs_once(workers: Workers) -> None:
    deployment = workers.deployment
    key = {"Idempotency-Key": f"outbox-{new_job_id()}"}
    first = post(workers.settings, QUICK, **key)
    assert first.status_code == 202, first.text

    again = post(workers.settings, QUICK, **key)

    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert_ran_once(deployment, first.json()["id"])
    third = post(workers.settings, QUICK, **key)
    assert third.json()["id"] == first.json()["id"] and third.json()["status"] == "succeeded"
    assert_ran_once(deployment, first.json()["id"])


def wait_for_study_end(studies: StudyStore, study_id: str) -> Any:
    found: list[Any] = []

    def ended() -> bool:
        found[:] = [studies.get_study(study_id)]
        return found[0] is not None and found[0].status.finished

    wait_for(ended, timeout=2 * JOB_SECONDS, what=f"study {study_id} to end")
    return found[0]


def test_a_study_stored_completes_with_its_plots(workers: Workers) -> None:
    studies = StudyStore(workers.deployment.store.client, plans_from_settings(workers.settings))
    plan = expand_study(StudyRequest.model_validate(STUDY))
    queue = workers.deployment.queue
    # Stored, then its API process died: nothing else needed.
    study = studies.create_study(
        plan=plan, queues=[queue] * len(plan.children), plots=planned_study_plots(plan.children)
    )

    ended = wait_for_study_end(studies, study.id)

    assert ended.status is JobStatus.SUCCEEDED, ended
    for child in study.child_ids:
        assert_ran_once(workers.deployment, child)
    # The children ran as the study's: the worker of the last one drew the study's plots.
    assert studies.get_study_series(study.id) is not None
    assert studies.get_study_plot(study.id, field="curves", body=False).etag
