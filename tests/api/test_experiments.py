"""Experiments over real HTTP, no worker: submit, validate, list, read, cancel, delete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.experiment.jobs import JobStatus, new_job_id
from core.store.stores import JobStore
from tests.api.conftest import UNTRAINED, WORKER, FinishedJob, problem


def post(client: httpx.Client, spec: Any = None, **headers: str) -> httpx.Response:
    return client.post("/v1/experiments", json=UNTRAINED if spec is None else spec, headers=headers)


# ---------------------------------------------------------------------- submit


def test_post_queues_the_job_and_points_at_it(client: httpx.Client) -> None:
    response = post(client)

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/experiments/{job['id']}"
    assert job["status"] == "queued" and job["progress"] == {"epoch": 0, "epochs": 2}
    assert job["spec"]["training"]["epochs"] == 2 and job["spec"]["device"] == "gpu"
    assert job["queue"].endswith("gpu")
    assert client.get(response.headers["location"]).json() == job


def test_post_of_an_empty_spec_is_the_tutorial(client: httpx.Client) -> None:
    job = post(client, {"device": "gpu"}).json()

    assert job["spec"]["model"]["hidden_layers"] == [5, 5, 5, 5]
    assert job["spec"]["model"]["activation"] == "sigmoid"
    assert job["progress"]["epochs"] == 100 and job["spec"]["seed"] > 0


def test_a_job_waits_on_the_dispatcher_of_its_specs_queue(
    client: httpx.Client, store: JobStore
) -> None:
    job = post(client, {"device": "gpu"}).json()  # no gpu worker here: it waits

    assert job["queue"].endswith("gpu")
    assert job["id"] in store.waiting(queue=job["queue"])
    # No message until a worker claims it, so nothing for a reaper to send either.
    assert store.client.llen(store.plans.keys.celery_queue(job["queue"])) == 0
    assert job["id"] not in [job_id for job_id, _ in store.unsent_dispatches(limit=10_000)]
    client.post(f"/v1/experiments/{job['id']}/cancel")
    assert job["id"] not in store.waiting(queue=job["queue"])


def test_idempotency_key_replays_the_first_job(client: httpx.Client) -> None:
    first = post(client, **{"Idempotency-Key": f"key-{new_job_id()}"})
    key = first.request.headers["Idempotency-Key"]
    again = post(client, **{"Idempotency-Key": key})

    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


def test_idempotency_key_with_another_body_is_a_422(client: httpx.Client) -> None:
    key = f"key-{new_job_id()}"
    post(client, **{"Idempotency-Key": key})

    other = {**UNTRAINED, "training": {"epochs": 3}}
    body = problem(post(client, other, **{"Idempotency-Key": key}), 422)
    assert body["errors"][0]["field"] == "Idempotency-Key"


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"training": {"epochs": 100_000}}, "training.epochs"),
        ({"training": {"epochs": 0}}, "training.epochs"),
        ({"model": {"hidden_layers": [5, 0]}}, "model.hidden_layers[1]"),
        ({"model": {"activation": "softmaxx"}}, "model.activation"),
        ({"model": {"activation": ["relu"]}}, "model.activation"),
        ({"dataset": {"kind": "mnist"}}, "dataset.kind"),
        ({"surprise": 1}, "surprise"),
        # Limits spanning fields name the field to blame (SpecLimitError.field).
        ({"training": {"batch_size": 2000}}, "training.batch_size"),
        ({"training": {"epochs": 1000, "batch_size": 1}}, "training.epochs"),
        ({"model": {"hidden_layers": [512] * 8}}, "model.hidden_layers"),
        ({"training": {"clipnorm": 1, "clipvalue": 1}}, "training.clipnorm"),
        ([], "body"),
    ],
)
def test_bad_specs_are_422_naming_the_field(client: httpx.Client, spec: Any, field: str) -> None:
    body = problem(post(client, spec), 422)

    assert body["type"].endswith("invalid-spec")
    assert [error["field"] for error in body["errors"]] == [field]
    assert body["errors"][0]["reason"] and field in body["detail"]


def test_malformed_json_is_a_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/experiments", content=b'{"training": ', headers={"Content-Type": "application/json"}
    )
    assert problem(response, 400)["type"].endswith("bad-json")


def test_a_spec_sent_as_a_form_is_a_415(client: httpx.Client) -> None:
    response = client.post(
        "/v1/experiments",
        content=b'{"training": {"epochs": 2}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "application/json" in problem(response, 415)["detail"]


def test_an_oversized_body_is_refused_before_parsing(client: httpx.Client) -> None:
    response = client.post(
        "/v1/experiments",
        content=b'{"name": "' + b"x" * 200_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    problem(response, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 10_000
        yield b'"}'

    chunked = client.post(
        "/v1/experiments", content=chunks(), headers={"Content-Type": "application/json"}
    )
    problem(chunked, 413)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("status=done", "status"),
        ("cursor=x", "cursor"),
    ],
)
def test_bad_list_parameters_are_422(client: httpx.Client, query: str, field: str) -> None:
    body = problem(client.get(f"/v1/experiments?{query}"), 422)
    assert [error["field"] for error in body["errors"]] == [field]


# ---------------------------------------------------------------------- unknown


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/experiments/{id}"),
        ("GET", "/v1/experiments/{id}/result"),
        ("GET", "/v1/experiments/{id}/arrays.npz"),
        ("GET", "/v1/experiments/{id}/plots"),
        ("GET", "/v1/experiments/{id}/plots/weights.png"),
        ("GET", "/v1/experiments/{id}/events"),
        ("POST", "/v1/experiments/{id}/cancel"),
        ("DELETE", "/v1/experiments/{id}"),
    ],
)
@pytest.mark.parametrize("job_id", ["unknown", "01ARZ3NDEKTSV4RRFFQ69G5FAV"])
def test_unknown_ids_are_404(client: httpx.Client, method: str, path: str, job_id: str) -> None:
    body = problem(client.request(method, path.format(id=job_id)), 404)
    assert job_id in body["detail"]


def test_unknown_routes_are_problems_too(client: httpx.Client) -> None:
    problem(client.get("/v1/nothing-here"), 404)
    problem(client.put("/v1/experiments"), 405)


# ----------------------------------------------------------------------- listing


def test_listing_pages_newest_first(client: httpx.Client) -> None:
    created = [post(client).json()["id"] for _ in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "status": "queued"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/experiments", params=params).json()
        assert len(page["items"]) <= 2
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None or all(job_id in seen for job_id in created):
            break

    assert len(seen) == len(set(seen))  # no job twice across pages
    mine = [job_id for job_id in seen if job_id in created]
    assert mine == created[::-1]


def test_listing_filters_by_status(client: httpx.Client, finished_job: FinishedJob) -> None:
    done = finished_job().id
    waiting = post(client).json()["id"]

    succeeded = client.get("/v1/experiments", params={"status": "succeeded", "limit": 200})
    ids = [job["id"] for job in succeeded.json()["items"]]
    assert done in ids and waiting not in ids
    assert all(job["status"] == "succeeded" for job in succeeded.json()["items"])


# ----------------------------------------------------------------------- results


def test_result_is_409_naming_the_status_until_it_succeeded(client: httpx.Client) -> None:
    job_id = post(client).json()["id"]

    body = problem(client.get(f"/v1/experiments/{job_id}/result"), 409)
    assert body["job_status"] == "queued" and "queued" in body["detail"]
    problem(client.get(f"/v1/experiments/{job_id}/plots"), 409)


def test_result_and_arrays_of_a_finished_job(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    job = finished_job(result_json='{"version":1,"history":{}}', arrays=b"PK\x03\x04npz")

    result = client.get(f"/v1/experiments/{job.id}/result")
    assert result.status_code == 200 and result.json() == {"version": 1, "history": {}}
    assert "immutable" in result.headers["cache-control"]
    arrays = client.get(f"/v1/experiments/{job.id}/arrays.npz")
    assert arrays.status_code == 200 and arrays.content == b"PK\x03\x04npz"
    assert arrays.headers["content-type"] == "application/octet-stream"


def test_arrays_without_raw_capture_is_404(client: httpx.Client, finished_job: FinishedJob) -> None:
    job = finished_job()
    body = problem(client.get(f"/v1/experiments/{job.id}/arrays.npz"), 404)
    assert "capture.raw" in body["detail"]


# -------------------------------------------------------------- cancel, delete


def test_cancel_of_a_queued_job_cancels_it(client: httpx.Client) -> None:
    job_id = post(client).json()["id"]

    response = client.post(f"/v1/experiments/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(f"/v1/experiments/{job_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert client.get(f"/v1/experiments/{job_id}").json()["finished_at"] is not None


def test_cancel_of_a_running_job_is_accepted(client: httpx.Client, store: JobStore) -> None:
    job_id = post(client).json()["id"]
    store.mark_running(job_id, worker=WORKER, max_deliveries=3)

    response = client.post(f"/v1/experiments/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "running" and response.json()["cancel_requested"]


def test_cancel_of_a_finished_job_is_409(client: httpx.Client, finished_job: FinishedJob) -> None:
    job = finished_job()
    body = problem(client.post(f"/v1/experiments/{job.id}/cancel"), 409)
    assert body["job_status"] == JobStatus.SUCCEEDED.value


def test_delete_removes_the_job(client: httpx.Client, finished_job: FinishedJob) -> None:
    job = finished_job()

    assert client.delete(f"/v1/experiments/{job.id}").status_code == 204
    problem(client.get(f"/v1/experiments/{job.id}"), 404)
    problem(client.get(f"/v1/experiments/{job.id}/result"), 404)
    problem(client.delete(f"/v1/experiments/{job.id}"), 404)
