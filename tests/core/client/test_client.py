"""The Python client against a running service: real API server, worker and Redis."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.client import (
    BadRequestError,
    Client,
    ConflictError,
    Event,
    NotFoundError,
    ServiceUnreachableError,
    UnauthorizedError,
    UnavailableError,
)
from tests.api.conftest import UNTRAINED
from tests.api.test_plots import png_size
from tests.conftest import KeysServer, RedisServer, Server, Worker, free_port, serve_api

PNG = b"\x89PNG\r\n\x1a\n"
RAW: dict[str, Any] = {"seed": 3, "training": {"epochs": 6}, "capture": {"raw": True}}
STUDY: dict[str, Any] = {
    "base": {"seed": 2, "training": {"epochs": 4}},
    "axes": {"model.activation": ["sigmoid", "relu"]},
    "seeds": 1,
}


@pytest.fixture
def client(api_server: Server) -> Iterator[Client]:
    with Client(api_server.url) as gradwatch:
        yield gradwatch


@pytest.fixture(scope="module")
def trained(api_server: Server, worker_process: Worker) -> tuple[dict[str, Any], list[Event]]:
    """A job with raw capture, waited for through its event stream: (record, events)."""
    events: list[Event] = []
    with Client(api_server.url) as gradwatch:
        job = gradwatch.submit(RAW)
        assert job["status"] == "queued"
        done = gradwatch.wait(job["id"], on_event=events.append)
    return dict(done), events


def test_wait_follows_the_stream_to_the_end(trained: tuple[dict[str, Any], list[Event]]) -> None:
    job, events = trained
    assert job["status"] == "succeeded" and job["summary"]["verdicts"]
    epochs = [event.data["epoch"] for event in events if event.type == "progress"]
    assert epochs == sorted(epochs) and epochs[-1] == 6
    assert events[-1].final and events[-1].data["status"] == "succeeded"
    assert all(event.id for event in events)


def test_result_plots_and_arrays_of_a_finished_job(
    client: Client, trained: tuple[dict[str, Any], list[Event]]
) -> None:
    job_id = trained[0]["id"]
    result = client.result(job_id)
    assert result["history"]["epoch"] == [1, 2, 3, 4, 5, 6]
    names = [link["name"] for link in client.plots(job_id)]
    assert "gradient_flow" in names
    assert client.plot(job_id, "gradient_flow").startswith(PNG)
    assert png_size(client.plot(job_id, "weights", width=400, height=300)) == (400, 300)
    arrays = client.arrays(job_id)
    assert arrays is not None and "dataset/x.npy" in zipfile.ZipFile(io.BytesIO(arrays)).namelist()


def test_a_bad_spec_raises_the_problem_with_its_field(client: Client) -> None:
    with pytest.raises(BadRequestError) as refused:
        client.submit({"training": {"epochs": 100_000}})
    error = refused.value
    assert error.status == 422
    assert [item["field"] for item in error.errors] == ["training.epochs"]
    assert "training.epochs" in str(error)


def test_unknown_ids_raise_not_found(client: Client) -> None:
    unknown = "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"
    for call in (client.get, client.result, client.study, client.delete):
        with pytest.raises(NotFoundError) as missing:
            call(unknown)
        assert missing.value.problem["type"] == "urn:gradwatch:problem:not-found"


def test_a_queued_job_is_cancelled_listed_and_deleted(client: Client) -> None:
    job = client.submit(UNTRAINED)
    with pytest.raises(ConflictError):
        client.result(job["id"])
    assert job["id"] in [item["id"] for item in client.experiments(status="queued")["items"]]
    assert client.cancel(job["id"])["status"] == "cancelled"
    assert client.get(job["id"])["status"] == "cancelled"
    assert list(client.events(job["id"]))[-1].data["status"] == "cancelled"
    client.delete(job["id"])
    with pytest.raises(NotFoundError):
        client.get(job["id"])


def test_a_repeated_submission_is_one_job(client: Client) -> None:
    first = client.submit(UNTRAINED, idempotency_key="client-test-repeat")
    again = client.submit(UNTRAINED, idempotency_key="client-test-repeat")
    assert first["id"] == again["id"]
    client.delete(first["id"])


def test_a_study_is_submitted_waited_for_and_summarized(
    client: Client, worker_process: Worker
) -> None:
    study = client.submit_study(STUDY)
    child_events: list[Event] = []
    done = client.wait_study(study["id"], on_event=child_events.append)
    assert done["status"] == "succeeded"
    assert {e.data["child"] for e in child_events if e.type == "child"} == {
        child["id"] for config in done["configs"] for child in config["children"]
    }
    rows = client.study_summary(study["id"])["rows"]
    assert [row["label"] for row in rows] == ["activation=sigmoid", "activation=relu"]
    assert client.study_summary_csv(study["id"]).startswith("config")
    names = [link["name"] for link in client.study_plots(study["id"])]
    assert names and client.study_plot(study["id"], names[0]).startswith(PNG)
    assert png_size(client.study_plot(study["id"], names[0], width=480, height=360)) == (480, 360)
    assert study["id"] in [item["id"] for item in client.studies()["items"]]
    assert client.arrays(rows[0]["children"][0]) is None  # no capture.raw: none, no error
    client.delete_study(study["id"])
    with pytest.raises(NotFoundError):
        client.study(study["id"])


def test_a_bad_study_names_its_field(client: Client) -> None:
    with pytest.raises(BadRequestError) as refused:
        client.submit_study({"axes": {"model.activation": ["sigmoid", "nope"]}})
    assert refused.value.errors and refused.value.errors[0]["field"].startswith("axes")


def test_keys_mode_sends_the_key_and_refuses_without_one(keys_server: KeysServer) -> None:
    with Client(keys_server.url, key=keys_server.keys["alice"]) as alice:
        job = alice.submit(UNTRAINED)
        assert alice.get(job["id"])["id"] == job["id"]
    with Client(keys_server.url, key=keys_server.keys["bob"]) as bob, pytest.raises(NotFoundError):
        bob.get(job["id"])
    with Client(keys_server.url) as nobody, pytest.raises(UnauthorizedError) as refused:
        nobody.get(job["id"])
    assert refused.value.status == 401


def test_no_service_is_unreachable() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}") as client,
        pytest.raises(ServiceUnreachableError),
    ):
        client.presets()


@pytest.fixture
def redis_later(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server with a port but not started yet; stopped at the end."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def test_a_503_is_retried_after_retry_after_until_the_service_serves(
    service_env: dict[str, str], redis_later: RedisServer
) -> None:
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # the first retry finds Redis back
        pauses.append(seconds)
        if redis_later.process is None:
            redis_later.start()

    with serve_api({**service_env, "REDIS_URL": redis_later.url}) as server:
        with Client(server.url, sleep=sleep) as client:
            job = client.submit(UNTRAINED)
        assert job["status"] == "queued"
        assert pauses and pauses[0] == 5.0  # the service's Retry-After

        redis_later.stop()
        pauses.clear()
        with (
            Client(server.url, retries=2, sleep=pauses.append) as client,
            pytest.raises(UnavailableError) as unavailable,
        ):
            client.get(job["id"])
        assert unavailable.value.status == 503 and len(pauses) == 2
        assert unavailable.value.problem["title"]


def test_a_run_s_prescriptions_are_proven_in_a_study(
    client: Client, trained: tuple[dict[str, Any], list[Event]]
) -> None:
    job = trained[0]
    prescriptions = client.result(job["id"])["diagnosis"]["prescriptions"]
    fix = next(iter(prescriptions.values()))[0]["fix"]
    study = client.prove_remedies(job["id"], fixes=[fix], seeds=1)
    assert [config["label"] for config in study["configs"]] == ["baseline", fix]
    assert client.get(job["id"])["remedy_studies"] == [study["id"]]
    client.cancel_study(study["id"])
    with pytest.raises(BadRequestError) as refused:
        client.prove_remedies(job["id"], fixes=["no_such_fix"])
    assert refused.value.errors[0]["field"].startswith("fixes")


def test_a_dataset_is_uploaded_read_listed_and_deleted(client: Client) -> None:
    rows = "\n".join(f"{i % 7},{i % 3},{i % 2}" for i in range(40))
    dataset = client.upload_dataset(f"a,b,label\n{rows}\n".encode(), "tiny.csv")
    assert (dataset["format"], dataset["samples"], dataset["features"]) == ("csv", 40, 2)
    assert client.upload_dataset(f"a,b,label\n{rows}\n".encode(), "tiny.csv")["id"] == dataset["id"]
    assert client.dataset(dataset["id"])["name"] == "tiny.csv"
    assert dataset["id"] in [item["id"] for item in client.datasets()["items"]]
    with pytest.raises(BadRequestError) as refused:
        client.upload_dataset(b"a,b\n1,2\n", "bad.csv")
    assert refused.value.status in (400, 422)
    client.delete_dataset(dataset["id"])
    with pytest.raises(NotFoundError):
        client.dataset(dataset["id"])


def test_an_interrupted_stream_is_resumed_where_it_stopped(
    service_env: dict[str, str], redis_later: RedisServer
) -> None:
    redis_later.options = ("--appendonly", "yes", "--appendfsync", "always")  # the job stays
    redis_later.start()
    first_event, back = threading.Event(), threading.Event()
    seen: list[Event] = []
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # between the interruption and the reconnect
        pauses.append(seconds)
        redis_later.start()
        back.set()

    with serve_api({**service_env, "REDIS_URL": redis_later.url}) as server:
        with Client(server.url) as client:
            job = client.submit(UNTRAINED)

        def read() -> None:
            with Client(server.url, sleep=sleep) as client:
                for event in client.events(job["id"]):
                    seen.append(event)
                    first_event.set()

        reader = threading.Thread(target=read)
        reader.start()
        assert first_event.wait(30)
        redis_later.shut_down()
        assert back.wait(60), "the client did not reconnect"
        with Client(server.url, sleep=lambda _: time.sleep(0.2)) as client:
            client.cancel(job["id"])
        reader.join(60)
    assert not reader.is_alive()
    assert [event.type for event in seen] == ["state", "state"]
    assert [event.data["status"] for event in seen] == ["queued", "cancelled"]
    assert len(pauses) == 1
