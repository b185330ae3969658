"""Runs that blow up, end to end through the service: a record that says what happened.

An exploding network is a result, not an error: the job succeeds with the
`diverged` and `exploding` verdicts, and every document (record, result, events)
is strict JSON, non-finite numbers as null. An exception in the worker fails
the job with the exception's type and message, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.experiment.spec import ExperimentSpec
from core.queue.app import make_celery, send_training
from core.settings import Settings
from core.store.keys import Keys
from core.store.stores import JobStore
from tests.api.test_end_to_end import submit, wait_for_status
from tests.api.test_events import sse_events
from tests.conftest import Worker

pytestmark = pytest.mark.usefixtures("worker_process")

EXPLODING: dict[str, Any] = {
    "seed": 5,
    "model": {
        "hidden_layers": [32] * 10,
        "activation": "relu",
        "initializer": {"kind": "random_normal", "mean": 0, "stddev": 10},
    },
    "training": {"epochs": 5, "optimizer": {"kind": "sgd", "learning_rate": 1.0}},
}
# What a traceback or an internal path would look like in a message.
INTERNALS = ("Traceback", 'File "', '.py"', ".py:", "/work/", "site-packages")


def strict_json(text: str) -> Any:
    """Parse `text`, failing on NaN or Infinity (which JSON does not have)."""
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in {text[:200]}"))


@pytest.fixture(scope="module")
def exploded(api_server: Any, worker_process: Worker) -> dict[str, Any]:
    with api_server.client() as client:
        return wait_for_status(client, submit(client, EXPLODING), "succeeded", "failed")


def test_an_exploding_network_succeeds_with_the_verdicts(exploded: dict[str, Any]) -> None:
    assert exploded["status"] == "succeeded", exploded["error"]
    summary = exploded["summary"]
    assert summary["diverged"] is True
    assert {"diverged", "exploding"} <= set(summary["verdicts"])
    assert exploded["error"] is None


def test_its_documents_are_strict_json_with_null_for_non_finite_numbers(
    client: httpx.Client, exploded: dict[str, Any]
) -> None:
    url = f"/v1/experiments/{exploded['id']}"
    strict_json(client.get(url).text)
    result = strict_json(client.get(f"{url}/result").text)
    assert result["diverged"] is True
    [layer, *_] = result["diagnosis"]["evidence"]["diverged"]["layers_with_non_finite_values"]
    assert (
        None
        in result["series"][layer]["kernel"]["grad_norm"]
        + (result["series"][layer]["kernel"]["weight_norm"])
    )
    with client.stream("GET", f"{url}/events") as response:
        events = list(sse_events(response))  # parses each data line as JSON
    assert events[-1].data["status"] == "succeeded"


def test_its_plots_draw_from_the_numbers_that_stayed_finite(
    client: httpx.Client, exploded: dict[str, Any]
) -> None:
    for name in exploded["plots"]:
        response = client.get(f"/v1/experiments/{exploded['id']}/plots/{name}.png")
        assert response.status_code == 200, name


@pytest.fixture
def celery(settings: Settings) -> Iterator[Any]:
    app = make_celery(settings)
    yield app
    app.close()


def test_an_exception_in_the_worker_fails_the_job_with_type_and_message_only(
    client: httpx.Client, store: JobStore, settings: Settings, celery: Any
) -> None:
    spec = ExperimentSpec.model_validate({"seed": 1, "training": {"epochs": 2}})
    queue = settings.queue_for(spec.device)
    # Parked where no worker claims it, while its spec is changed to one the engine
    # refuses (as one written by another release might be); then sent straight to the
    # workers' queue.
    job_id = store.create(spec=spec, queue=f"{queue}.parked").record.id
    record_key = Keys(settings.namespace).job(job_id).record
    store.client.hset(record_key, "spec", json.dumps({"model": {"hidden_layers": []}}))
    send_training(celery, job_id=job_id, queue=queue)

    job = wait_for_status(client, job_id, "failed", "succeeded")

    assert job["status"] == "failed"
    assert job["error"]["type"] == "ValidationError"
    assert "hidden_layers" in job["error"]["message"]
    assert set(job["error"]) == {"type", "message"}
    with client.stream("GET", f"/v1/experiments/{job_id}/events") as response:
        final = list(sse_events(response))[-1].data
    assert final == {"status": "failed", "error": job["error"]}
    refused = client.get(f"/v1/experiments/{job_id}/result")
    assert refused.status_code == 409
    for text in (json.dumps(job), json.dumps(final), refused.text):
        assert not any(internal in text for internal in INTERNALS), text
