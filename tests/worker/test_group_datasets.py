"""A study's children trained side by side when an uploaded dataset is gone: the children
on that dataset fail with DatasetDeleted, naming it; the others train, side by side still.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from core.experiment.grouping import ensemble_groups
from core.experiment.jobs import JobStatus, new_job_id
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import StudyRequest, expand_study
from core.settings import Settings
from core.store.records import JobRecord
from core.store.stores import JobStore, StudyStore, plans_from_settings
from tests.api.test_dataset_training import two_moons_csv
from tests.conftest import Server, Worker, wait_for
from tests.worker.conftest import JOB_SECONDS

GONE = "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"  # never uploaded: as if deleted behind the API's back
GONE_DATA = {"name": "gone.csv", "samples": 60, "sample_shape": [2], "classes": 2}
GONE_DATASET = {"kind": "uploaded", "id": GONE, "data": GONE_DATA}


@pytest.fixture(scope="module")
def moons(api_server: Server) -> dict[str, Any]:
    """An uploaded dataset that stays: its spec section, `data` filled in as the API does."""
    with api_server.client() as client:
        response = client.post(
            "/v1/datasets",
            params={"label": "side"},
            files={"file": ("moons.csv", two_moons_csv(), "text/csv")},
        )
    assert response.status_code in (200, 201), response.text
    body = response.json()
    data = {
        "name": body["name"],
        "samples": body["samples"],
        "sample_shape": body["sample_shape"],
        "classes": len(body["classes"]),
    }
    return {"kind": "uploaded", "id": body["id"], "data": data}


def ended(store: JobStore, job_id: str) -> JobRecord:
    found: list[JobRecord] = []

    def finished() -> bool:
        record = store.get(job_id)
        found[:] = [record] if record is not None else []
        return record is not None and record.status.finished

    wait_for(finished, timeout=2 * JOB_SECONDS, what=f"job {job_id} to end")
    return found[0]


@contextlib.contextmanager
def beating(store: JobStore, hostname: str, *, queue: str, jobs: list[str]) -> Iterator[None]:
    """This process as worker `hostname` on `queue`, beating and holding `jobs` (at their
    first dispatch) as worker.heartbeat does: so that the reaper of a worker the session
    runs does not take them for a lost worker's."""
    stopped = threading.Event()

    def beat() -> None:
        while True:
            store.record_worker_jobs(hostname=hostname, jobs=[(job, 0) for job in jobs])
            store.record_heartbeat(queue=queue, hostname=hostname)
            if stopped.wait(1.0):
                return

    heart = threading.Thread(target=beat, name="test-heartbeat", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stopped.set()
        heart.join()
        store.forget_worker(queue=queue, hostname=hostname)


def train_as_one_group(
    settings: Settings, store: JobStore, specs: list[dict[str, Any]]
) -> tuple[list[str], dict[str, JobStatus | None]]:
    """The jobs of `specs`, sent as one group message and trained in this process (with
    TensorFlow) as the worker `group@test`; they wait on a queue no worker serves, so
    the session's worker does not take them. Their ids, and what the task returned."""
    from worker.group_training import run_training_group

    queue = f"{settings.namespace}.parked"
    ids = [
        store.create(spec=ExperimentSpec.model_validate(spec), queue=queue).record.id
        for spec in specs
    ]
    with beating(store, "group@test", queue=queue, jobs=ids):
        return ids, run_training_group(ids, study_id=new_job_id(), hostname="group@test")


def members(store: JobStore, job_id: str) -> int:
    """How many runs the job trained side by side with (itself included)."""
    result = json.loads(store.get_result(job_id).content or b"null")
    return int(result["timing"]["members"])


def assert_failed_for_the_gone_dataset(record: JobRecord) -> None:
    assert record.status is JobStatus.FAILED, record
    assert record.error == {
        "type": "DatasetDeleted",
        "message": f"dataset {GONE} (gone.csv) was deleted before the job ran",
    }


def test_members_of_one_group_always_name_one_dataset(moons: dict[str, Any]) -> None:
    """What makes a group (core.experiment.grouping) holds the dataset's id: children on
    two uploaded datasets are never one group, so a gone dataset fails a group whole."""
    plan = expand_study(
        StudyRequest.model_validate(
            {
                "base": {"training": {"epochs": 2}},
                "axes": {"dataset": [GONE_DATASET, moons]},
                "seeds": 3,
            }
        )
    )
    groups = ensemble_groups(plan.children)
    assert len(groups) == 2
    for group in groups:
        assert len({plan.children[index].dataset.id for index in group}) == 1


def test_a_study_on_a_gone_dataset_fails_those_children_alone(
    settings: Settings, store: JobStore, moons: dict[str, Any], worker_process: Worker
) -> None:
    """Stored as the API stores it (the API would refuse the gone dataset's id), trained by
    the session's worker: two groups of two, one on each dataset."""
    studies = StudyStore(store.client, plans_from_settings(settings))
    body = {
        "base": {"seed": 2, "training": {"epochs": 2}},
        "axes": {"dataset": [GONE_DATASET, moons]},
        "seeds": 2,
    }
    plan = expand_study(StudyRequest.model_validate(body))
    study = studies.create_study(
        plan=plan, queues=[worker_process.queue] * len(plan.children), plots=[]
    )

    gone, kept = study.child_ids[:2], study.child_ids[2:]
    for job_id in gone:
        assert_failed_for_the_gone_dataset(ended(store, job_id))
    for job_id in kept:
        record = ended(store, job_id)
        assert record.status is JobStatus.SUCCEEDED, record.error
        assert members(store, job_id) == 2  # side by side, as a group
    # The worker of its last child brings the study up to date: failed, as one child failed.
    wait_for(
        lambda: (found := studies.get_study(study.id)) is not None and found.status.finished,
        timeout=JOB_SECONDS,
        what=f"study {study.id} to end",
    )
    finished = studies.get_study(study.id)
    assert finished is not None and finished.status is JobStatus.FAILED


def test_a_group_trains_the_members_whose_dataset_is_there(
    settings: Settings, store: JobStore, moons: dict[str, Any]
) -> None:
    """One group message naming a member on a gone dataset beside two that share another
    graph (a reaper's or an older API's grouping; the worker groups them again): the one
    fails saying so, the two train side by side."""
    specs = [
        {"seed": 1, "dataset": GONE_DATASET, "training": {"epochs": 2}},
        {"seed": 2, "dataset": moons, "training": {"epochs": 2}},
        {"seed": 3, "dataset": moons, "training": {"epochs": 2}},
    ]
    ids, statuses = train_as_one_group(settings, store, specs)

    assert statuses == {
        ids[0]: JobStatus.FAILED,
        ids[1]: JobStatus.SUCCEEDED,
        ids[2]: JobStatus.SUCCEEDED,
    }
    assert_failed_for_the_gone_dataset(ended(store, ids[0]))
    assert [members(store, job_id) for job_id in ids[1:]] == [2, 2]
