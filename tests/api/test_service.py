"""The service around the routes: probes, metrics, OpenAPI, presets, no TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from api.main import create_app
from core.experiment.presets import PRESETS
from core.experiment.spec import ExperimentSpec
from core.settings import Settings
from tests.api.conftest import UNTRAINED
from tests.conftest import ROOT, free_port


def test_healthz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_redis_and_worker_queues(client: httpx.Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and body["redis"] is True
    assert len(body["workers"]) == 2  # the cpu and gpu queues of the namespace


def test_metrics_count_jobs_by_state_and_queue_depth(client: httpx.Client) -> None:
    client.post("/v1/experiments", json=UNTRAINED)

    text = client.get("/metrics").text

    assert 'gradwatch_jobs{status="queued"}' in text
    assert "gradwatch_queue_depth{queue=" in text
    assert "gradwatch_job_duration_seconds_bucket" in text
    assert "gradwatch_live_workers" in text


def test_openapi_documents_every_route(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]

    assert set(paths) >= {
        "/v1/experiments",
        "/v1/experiments/{job_id}",
        "/v1/experiments/{job_id}/result",
        "/v1/experiments/{job_id}/arrays.npz",
        "/v1/experiments/{job_id}/cancel",
        "/v1/experiments/{job_id}/events",
        "/v1/experiments/{job_id}/plots",
        "/v1/experiments/{job_id}/plots/{name}.png",
        "/v1/presets",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    assert "delete" in paths["/v1/experiments/{job_id}"]


def test_presets_are_valid_specs(client: httpx.Client) -> None:
    items = client.get("/v1/presets").json()["items"]

    assert [item["name"] for item in items] == [preset.name for preset in PRESETS]
    for item in items:
        spec = ExperimentSpec.model_validate(item["spec"])
        if spec.model.layers is None:  # the tutorial's MLPs
            assert spec.training.epochs == 100 and spec.dataset.kind == "circles"


def test_presets_cover_the_tutorial() -> None:
    shapes = {
        (
            tuple(p.spec["model"]["hidden_layers"]),
            p.spec["model"]["activation"],
            p.spec["model"]["initializer"]["kind"],
        )
        for p in PRESETS
        if "hidden_layers" in p.spec["model"]
    }
    for activation in ("sigmoid", "tanh", "relu"):
        assert ((5,) * 4, activation, "random_normal") in shapes
        assert ((5,) * 4, activation, "glorot_uniform") in shapes
    assert ((5,), "relu", "glorot_uniform") in shapes
    assert ((5,), "sigmoid", "glorot_uniform") in shapes
    assert ((5, 5, 5), "sigmoid", "glorot_uniform") in shapes


@pytest.mark.parametrize("module", ["api.main"])
def test_the_api_never_imports_tensorflow(module: str) -> None:
    probe = (
        f"import sys, {module}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') "
        "or m in ('core.engine.run', 'worker.celery_app')); print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.anyio
async def test_an_unreachable_store_is_a_503_problem_not_a_500() -> None:
    settings = Settings(namespace="gwtest-down", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            record = await client.get("/v1/experiments/01ARZ3NDEKTSV4RRFFQ69G5FAV")
            ready = await client.get("/readyz")

    assert record.status_code == 503 and record.headers["retry-after"]
    assert record.headers["content-type"] == "application/problem+json"
    assert ready.status_code == 503 and ready.json()["redis"] is False


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
