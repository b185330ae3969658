"""API test helpers: an HTTP client on the server, and jobs put straight into the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest

from core.experiment.jobs import Summary
from core.experiment.spec import ExperimentSpec
from core.store.records import JobRecord, WorkerInfo
from core.store.stores import JobStore
from tests.conftest import Server

# Jobs the tests post without wanting them trained go to the GPU queue, which no test
# worker consumes: they stay queued, whatever else runs in the session.
UNTRAINED: dict[str, Any] = {"seed": 1, "device": "gpu", "training": {"epochs": 2}}

WORKER = WorkerInfo(hostname="fake@test", device="cpu", device_name="CPU", tensorflow="0")


@pytest.fixture
def client(api_server: Server) -> Iterator[httpx.Client]:
    with api_server.client() as http:
        yield http


FinishedJob = Callable[..., JobRecord]


@pytest.fixture
def finished_job(store: JobStore) -> FinishedJob:
    """Makes a succeeded job directly in the store: result and default-size PNGs as given."""

    def make(
        *,
        plots: Mapping[str, bytes] | None = None,
        result_json: str = '{"version":1}',
        arrays: bytes | None = None,
    ) -> JobRecord:
        spec = ExperimentSpec.model_validate(UNTRAINED)
        job_id = store.create(spec=spec, queue="nowhere").record.id
        assert store.mark_running(job_id, worker=WORKER, max_deliveries=3) is not None
        assert store.mark_succeeded(
            job_id,
            summary=Summary(loss=0.5, accuracy=0.75),
            result_json=result_json,
            plots=plots or {},
            arrays=arrays,
        )
        record = store.get(job_id)
        assert record is not None
        return record

    return make


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem document of `response`, checked to be one with `status`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["instance"]
    return body
