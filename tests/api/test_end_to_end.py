"""End to end: real HTTP server, real Celery worker, real training, real Redis."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from core.plotting.catalog import EXPERIMENT_PLOTS
from tests.api.test_events import sse_events
from tests.api.test_plots import ORIGIN, png_size
from tests.conftest import LONG_SPEC, Server, Worker, wait_for

# The quick job is an MLP: no recurrent layer, no convolution, so no gradients through
# time or per channel.
PLOT_NAMES = tuple(
    name for name in EXPERIMENT_PLOTS.names if name not in {"through_time", "channels"}
)

# The first job of a fresh worker imports TensorFlow and compiles the network.
JOB_SECONDS = 180.0
QUICK: dict[str, Any] = {"seed": 11, "training": {"epochs": 5}}

pytestmark = pytest.mark.usefixtures("worker_process")


def submit(client: httpx.Client, spec: dict[str, Any]) -> str:
    response = client.post("/v1/experiments", json=spec)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_for_status(client: httpx.Client, job_id: str, *statuses: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def reached() -> bool:
        seen[:] = [client.get(f"/v1/experiments/{job_id}").json()]
        return seen[0]["status"] in statuses

    wait_for(reached, timeout=JOB_SECONDS, what=f"job {job_id} to be {' or '.join(statuses)}")
    return seen[0]


@pytest.fixture(scope="module")
def quick_job(api_server: Server, worker_process: Worker) -> dict[str, Any]:
    """The default spec with 5 epochs, trained to the end."""
    with api_server.client() as client:
        job_id = submit(client, QUICK)
        return wait_for_status(client, job_id, "succeeded", "failed")


def test_the_tutorial_trains_to_succeeded(
    quick_job: dict[str, Any], worker_process: Worker
) -> None:
    assert quick_job["status"] == "succeeded", quick_job["error"]
    assert quick_job["progress"] == {"epoch": 5, "epochs": 5}
    assert quick_job["worker"]["hostname"] == worker_process.hostname
    assert quick_job["worker"]["device"] in ("cpu", "gpu") and quick_job["worker"]["tensorflow"]
    assert quick_job["deliveries"] == 1
    summary = quick_job["summary"]
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["loss"] > 0
    # drawn as it finished: the tutorial's two; the others are drawn on request
    assert quick_job["plots"] == ["weights", "gradients"]


def test_the_result_holds_every_epoch(client: httpx.Client, quick_job: dict[str, Any]) -> None:
    result = client.get(f"/v1/experiments/{quick_job['id']}/result").json()

    assert result["history"]["epoch"] == [1, 2, 3, 4, 5]
    assert result["seed"] == 11
    assert result["metrics"]["after"]["accuracy"] == pytest.approx(quick_job["summary"]["accuracy"])


def test_every_plot_is_a_png_with_etag_and_cors(
    client: httpx.Client, quick_job: dict[str, Any]
) -> None:
    plots = client.get(f"/v1/experiments/{quick_job['id']}/plots").json()["items"]
    assert [plot["name"] for plot in plots] == list(PLOT_NAMES)

    for plot in plots:
        response = client.get(plot["url"], headers={"Origin": ORIGIN})
        assert response.status_code == 200, plot["name"]
        assert png_size(response.content) == (900, 600)
        assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
        assert "immutable" in response.headers["cache-control"]
        etag = response.headers["etag"]
        assert client.get(plot["url"], headers={"If-None-Match": etag}).status_code == 304


def test_a_plot_at_an_asked_size(client: httpx.Client, quick_job: dict[str, Any]) -> None:
    url = f"/v1/experiments/{quick_job['id']}/plots/weights.png"
    started = time.perf_counter()
    first = client.get(url, params={"width": 480, "height": 320, "dpi": 72})
    rendered = time.perf_counter() - started

    assert first.status_code == 200 and png_size(first.content) == (480, 320)
    started = time.perf_counter()
    cached = client.get(url, params={"width": 480, "height": 320, "dpi": 72})
    assert cached.content == first.content and cached.headers["etag"] == first.headers["etag"]
    assert time.perf_counter() - started < max(rendered, 0.05)


def test_events_deliver_every_epoch_in_order_then_end(client: httpx.Client) -> None:
    job_id = submit(client, {**QUICK, "seed": 12})

    with client.stream("GET", f"/v1/experiments/{job_id}/events") as response:
        events = list(sse_events(response))

    epochs = [event.data["epoch"] for event in events if event.type == "progress"]
    assert epochs == [1, 2, 3, 4, 5]
    assert events[-1].type == "state" and events[-1].data["status"] == "succeeded"
    assert all("loss" in event.data for event in events if event.type == "progress")


def test_a_running_job_can_be_cancelled(client: httpx.Client) -> None:
    job_id = submit(client, {**LONG_SPEC, "seed": 13})

    def training() -> bool:
        job = client.get(f"/v1/experiments/{job_id}").json()
        return job["status"] == "running" and job["progress"]["epoch"] >= 1

    wait_for(training, timeout=JOB_SECONDS, what="the long job to start training")
    response = client.post(f"/v1/experiments/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested"]

    job = wait_for_status(client, job_id, "cancelled", "succeeded", "failed")
    assert job["status"] == "cancelled"
    assert job["progress"]["epoch"] < 1000 and job["finished_at"] is not None
    assert client.get(f"/v1/experiments/{job_id}/result").status_code == 409


def test_a_recurrent_regression_trains_end_to_end(api_server: Server) -> None:
    spec = {
        "seed": 5,
        "dataset": {"kind": "adding", "sequence_length": 12, "n_samples": 128},
        "model": {"layers": [{"class_name": "GRU", "config": {"units": 8}}]},
        "training": {"epochs": 2},
    }
    with api_server.client() as client:
        job = wait_for_status(client, submit(client, spec), "succeeded", "failed")
        assert job["status"] == "succeeded", job["error"]
        summary = job["summary"]
        assert summary["accuracy"] is None and 0.1 < summary["baseline_loss"] < 0.25
        result = client.get(f"/v1/experiments/{job['id']}/result").json()
    assert result["version"] == 3 and result["dataset"]["task"] == "regression"
    through = result["through_time"]["gru_1"]
    assert len(through["timesteps"]) == 12 and len(through["gradient_norm"]) == 2
    assert "gradients" in job["plots"]
