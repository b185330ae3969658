"""The dispatcher with real workers: fair between owners, warm where it can be, starving
nothing, and an owner's cap on running jobs.

Two prefork workers of the fast-reaping pair (tests.worker.conftest) claim from the
real Redis; orders are read from the jobs' own records (when each was created,
started, on which worker), never from timings.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.experiment.jobs import FINISHED, JobStatus
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import StudyRequest, expand_study
from core.settings import Settings
from core.store.records import JobRecord
from core.store.stores import StudyStore, plans_from_settings
from tests.conftest import wait_for
from tests.worker.conftest import (
    JOB_SECONDS,
    RECOVERY_SECONDS,
    Deployment,
    PreforkWorker,
    Workers,
)

QUICK: dict[str, Any] = {"seed": 1, "training": {"epochs": 5}}
# Ten networks, one child each: a study that floods the workers with work.
FLOOD: dict[str, Any] = {
    "base": {"seed": 1, "dataset": {"n_samples": 400}, "training": {"epochs": 10}},
    "axes": {"model.hidden_layers": [[width] * 3 for width in range(4, 14)]},
}


def create(deployment: Deployment, owner: str, body: dict[str, Any] = QUICK) -> str:
    spec = ExperimentSpec.model_validate(body)
    return deployment.store.create(spec=spec, queue=deployment.queue, owner=owner).record.id


def finished(deployment: Deployment, job_id: str) -> JobRecord:
    record = deployment.wait_for_status(job_id, FINISHED)
    assert record.status is JobStatus.SUCCEEDED, record.error
    return record


def hostname(record: JobRecord) -> str:
    assert record.worker is not None
    return str(record.worker["hostname"])


def idle(deployment: Deployment, hosts: Iterator[str] | list[str]) -> None:
    """Wait until each of `hosts` has claimed and found nothing: idle on the queue."""
    key = deployment.store.plans.keys.dispatcher(deployment.queue).idle
    wanted = {host.encode() for host in hosts}
    wait_for(
        lambda: wanted <= set(deployment.store.client.hkeys(key)),  # type: ignore[arg-type]
        timeout=JOB_SECONDS,
        what="the workers to be idle",
    )


def test_another_owners_job_starts_within_a_job_per_worker_of_a_study_flood(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    studies = StudyStore(deployment.store.client, plans_from_settings(workers.settings))
    plan = expand_study(StudyRequest.model_validate(FLOOD))
    study = studies.create_study(
        plan=plan, queues=[deployment.queue] * len(plan.children), plots=[], owner="alice"
    )

    bobs = create(deployment, "bob")
    created = deployment.store.get(bobs)
    record = finished(deployment, bobs)

    assert created is not None and record.started_at is not None
    children = [deployment.store.get(child) for child in study.child_ids]
    waiting_then = [c for c in children if c and (c.started_at or 1e20) > created.created_at]
    overtaking = [c for c in waiting_then if (c.started_at or 1e20) < record.started_at]
    # Most of the study still waited when bob's job came; first in first out, it would
    # have waited for them all. Only what a worker had claimed already went before it.
    assert len(waiting_then) >= 6
    assert len(overtaking) <= len(workers.live)
    for child in study.child_ids:
        finished(deployment, child)


def test_a_network_repeated_lands_on_the_worker_that_holds_it_warm(workers: Workers) -> None:
    deployment = workers.deployment
    hosts = list(workers.live)
    networks = [
        {"seed": 1, "model": {"hidden_layers": [7, 7]}, "training": {"epochs": 5}},
        {"seed": 1, "model": {"hidden_layers": [9, 9, 9]}, "training": {"epochs": 5}},
    ]
    first = {}
    for network in networks:
        idle(deployment, hosts)
        first[str(network["model"])] = hostname(
            finished(deployment, create(deployment, "a", network))
        )

    for seed in (2, 3):
        for network in networks:
            idle(deployment, hosts)  # both idle: either could take it
            repeat = create(deployment, "a", {**network, "seed": seed})
            assert hostname(finished(deployment, repeat)) == first[str(network["model"])]


def test_a_network_warm_on_a_worker_that_does_not_claim_runs_on_another(
    workers: Workers,
) -> None:
    deployment = workers.deployment
    network = {"seed": 1, "model": {"hidden_layers": [6, 6]}, "training": {"epochs": 5}}
    idle(deployment, list(workers.live))
    warm_host = hostname(finished(deployment, create(deployment, "a", network)))
    idle(deployment, list(workers.live))
    stalled = workers.live[warm_host]

    os.killpg(stalled.process.pid, signal.SIGSTOP)  # idle and warm, but claims nothing
    try:
        job_id = create(deployment, "a", {**network, "seed": 2})
        record = deployment.wait_for_status(
            job_id, {JobStatus.RUNNING, *FINISHED}, timeout=RECOVERY_SECONDS
        )
    finally:
        os.killpg(stalled.process.pid, signal.SIGCONT)

    assert hostname(record) != warm_host
    assert finished(deployment, job_id).deliveries == 1


@pytest.fixture(scope="module")
def capped(
    start_prefork_worker: Callable[..., PreforkWorker], new_namespace: Callable[[], Settings]
) -> list[PreforkWorker]:
    """Two workers that let an owner run one job at a time."""
    settings = new_namespace().model_copy(update={"max_running_jobs": 1})
    return [
        start_prefork_worker(
            settings, hostname=f"{settings.namespace}-{n}@capped", GRADWATCH_MAX_RUNNING_JOBS="1"
        )
        for n in (1, 2)
    ]


def test_an_owner_at_its_running_cap_waits_while_another_owner_runs(
    capped: list[PreforkWorker],
) -> None:
    deployment = capped[0].deployment
    alices = [create(deployment, "alice", {**QUICK, "seed": seed}) for seed in range(4)]
    bobs = create(deployment, "bob")

    runs = [finished(deployment, job_id) for job_id in alices]
    bob = finished(deployment, bobs)

    spans = sorted((run.started_at or 0, run.finished_at or 0) for run in runs)
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert started >= ended  # one at a time, though a worker was free
    # Bob's job ran beside them on the other worker, not after them.
    assert (bob.started_at or 0) < spans[-1][0]
