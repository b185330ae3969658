"""A job stored but never sent still runs, exactly once: the outbox, with real workers.

Every new job waits in the store's outbox until its sender confirms its message went
out. Here the sender never does (an API process that died after storing it), or the
API cannot reach the queue at all (its broker connection points at a closed port):
or loses it part-way through a study's children: the client still gets 202 and the
job, and a reaper of the fast-reaping workers (tests.worker.conftest) sends it a
silence period on, or a retry with the same Idempotency-Key does at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
from celery import Celery
from kombu.exceptions import OperationalError

from api.main import create_app
from core.experiment.jobs import FINISHED, JobStatus, new_job_id
from core.experiment.studies import StudyRequest, expand_study
from core.plotting.study_plots import planned_study_plots
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


class QueueGoesAway:
    """A Celery client that sends its first `sends` messages, then finds the queue gone."""

    def __init__(self, celery: Celery, sends: int) -> None:
        self.celery = celery
        self.sends = sends

    def send_task(self, *args: Any, **kwargs: Any) -> Any:
        if self.sends == 0:
            raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")
        self.sends -= 1
        return self.celery.send_task(*args, **kwargs)


def post(
    settings: Settings,
    body: dict[str, Any],
    *,
    path: str = "/v1/experiments",
    sends: int | None = None,
    **headers: str,
) -> httpx.Response:
    """POST to the real app, started as a server starts it; with `sends`, its Celery
    client sends that many messages, then finds the queue unreachable."""
    app = create_app(settings)

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            if sends is not None:
                services = app.state.services
                flaky = QueueGoesAway(services.celery, sends)
                app.state.services = dataclasses.replace(services, celery=flaky)
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

    response = post(workers.settings, QUICK, sends=0)

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
    first = post(workers.settings, QUICK, sends=0, **key)
    assert first.status_code == 202, first.text

    again = post(workers.settings, QUICK, **key)

    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert_ran_once(deployment, first.json()["id"])
    # The retry's own replay, once the job ran, sends nothing more.
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


def test_a_study_stored_but_never_sent_completes_with_its_plots(workers: Workers) -> None:
    studies = StudyStore(workers.deployment.store.client, plans_from_settings(workers.settings))
    plan = expand_study(StudyRequest.model_validate(STUDY))
    queue = workers.deployment.queue
    # Stored, then its API process died: no child was sent.
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


def test_a_study_whose_sends_fail_part_way_completes(workers: Workers) -> None:
    studies = StudyStore(workers.deployment.store.client, plans_from_settings(workers.settings))

    response = post(workers.settings, STUDY, path="/v1/studies", sends=1)

    assert response.status_code == 202, response.text
    study = response.json()
    # Accepted whole; the child that was sent may already be running, or even done.
    assert study["progress"]["children"] == 2 and study["status"] != "failed"
    ended = wait_for_study_end(studies, study["id"])
    assert ended.status is JobStatus.SUCCEEDED, ended
    first, second = ended.child_ids
    assert_ran_once(workers.deployment, first)
    assert_ran_once(workers.deployment, second)
    dispatches = [workers.deployment.store.get(child).dispatch for child in ended.child_ids]  # type: ignore[union-attr]
    assert dispatches == [0, 1]  # the first was sent; a reaper sent the second
