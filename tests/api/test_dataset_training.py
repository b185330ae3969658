"""Uploaded datasets through real training: a CSV and an NPZ trained by a real worker, and
a job whose dataset is gone failing with that reason."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from core.experiment.spec import ExperimentSpec
from core.store.stores import JobStore
from tests.api.conftest import problem
from tests.api.test_end_to_end import wait_for_status
from tests.api.test_plots import png_size
from tests.conftest import Server, Worker

pytestmark = pytest.mark.usefixtures("worker_process")


def two_moons_csv() -> bytes:
    rng = np.random.default_rng(3)
    angle = rng.uniform(0, np.pi, size=60)
    label = np.arange(60) % 2
    x = np.where(label == 0, np.cos(angle), 1 - np.cos(angle))
    y = np.where(label == 0, np.sin(angle), 0.5 - np.sin(angle))
    rows = [f"{a:.4f},{b:.4f},{'up' if c else 'down'}" for a, b, c in zip(x, y, label, strict=True)]
    return ("a,b,side\n" + "\n".join(rows) + "\n").encode()


def images_npz() -> bytes:
    rng = np.random.default_rng(4)
    y = np.arange(48) % 3
    x = rng.normal(0, 0.2, size=(48, 6, 6, 1))
    x[np.arange(48), y * 2, :, 0] += 1.0  # class k lights row 2k
    out = io.BytesIO()
    np.savez_compressed(out, x=x, y=y)
    return out.getvalue()


@pytest.fixture(scope="module")
def uploaded(api_server: Server) -> Iterator[dict[str, str]]:
    """A CSV of two classes in 2-D and an NPZ of 6x6 images of 3, uploaded once."""
    with api_server.client() as client:
        csv = client.post(
            "/v1/datasets",
            params={"label": "side"},
            files={"file": ("moons.csv", two_moons_csv(), "text/csv")},
        )
        npz = client.post(
            "/v1/datasets",
            params={"name": "rows"},
            content=images_npz(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert csv.status_code in (200, 201) and npz.status_code in (200, 201), npz.text
        ids = {"csv": csv.json()["id"], "npz": npz.json()["id"]}
        yield ids


def train(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/experiments", json=spec)
    assert response.status_code == 202, response.text
    return wait_for_status(client, response.json()["id"], "succeeded", "failed")


def test_a_csv_trains_and_its_result_and_plots_name_it(
    client: httpx.Client, uploaded: dict[str, str]
) -> None:
    dataset = {"kind": "uploaded", "id": uploaded["csv"], "validation_split": 0.25}
    job = train(client, {"seed": 2, "dataset": dataset, "training": {"epochs": 3}})
    assert job["status"] == "succeeded", job["error"]
    assert job["spec"]["dataset"]["data"] == {
        "name": "moons.csv",
        "samples": 60,
        "sample_shape": [2],
        "classes": 2,
    }
    result = client.get(f"/v1/experiments/{job['id']}/result").json()
    shown = result["dataset"]
    assert (shown["kind"], shown["name"], shown["id"]) == ("uploaded", "moons.csv", dataset["id"])
    assert (shown["n_train"], shown["n_validation"], shown["n_classes"]) == (45, 15, 2)
    assert shown["standardized"] is True
    for name in ("boundary", "dataset"):
        drawn = client.get(f"/v1/experiments/{job['id']}/plots/{name}.png")
        assert drawn.status_code == 200 and png_size(drawn.content) == (900, 600), name


def test_an_npz_of_images_trains_a_layer_list(
    client: httpx.Client, uploaded: dict[str, str]
) -> None:
    layers = [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 6, 6, 1]}},
        {"class_name": "Flatten"},
        {"class_name": "Dense", "config": {"units": 8, "activation": "tanh"}},
    ]
    spec = {
        "seed": 3,
        "dataset": {"kind": "uploaded", "id": uploaded["npz"], "validation_split": 0.25},
        "model": {"layers": layers},
        "training": {"epochs": 3, "batch_size": 12},
    }
    job = train(client, spec)
    assert job["status"] == "succeeded", job["error"]
    result = client.get(f"/v1/experiments/{job['id']}/result").json()
    assert result["dataset"]["name"] == "rows" and result["dataset"]["sample_shape"] == [6, 6, 1]
    assert result["dataset"]["n_classes"] == 3
    # 36 values a sample: no decision surface, and the reason says why
    boundary = problem(client.get(f"/v1/experiments/{job['id']}/plots/boundary.png"), 404)
    assert "2-D" in boundary["detail"]


def test_a_layer_list_must_take_the_uploaded_shape(
    client: httpx.Client, uploaded: dict[str, str]
) -> None:
    layers = [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 1]}},
        {"class_name": "Flatten"},
    ]
    spec = {
        "device": "gpu",
        "dataset": {"kind": "uploaded", "id": uploaded["npz"]},
        "model": {"layers": layers},
    }
    refused = problem(client.post("/v1/experiments", json=spec), 422)
    assert refused["errors"][0]["field"].startswith("model.layers[0]"), refused


def prices_csv() -> tuple[bytes, list[float]]:
    """120 rows of two features and a number to fit, price = 3 a - 2 b + 0.5 + noise; the
    prices as written."""
    rng = np.random.default_rng(5)
    a, b = rng.uniform(-1, 1, size=(2, 120))
    price = np.round(3 * a - 2 * b + 0.5 + rng.normal(0, 0.05, size=120), 4)
    rows = [f"{x:.4f},{y:.4f},{p:.4f}" for x, y, p in zip(a, b, price, strict=True)]
    return ("a,b,price\n" + "\n".join(rows) + "\n").encode(), price.tolist()


def test_an_uploaded_regression_trains_end_to_end(client: httpx.Client) -> None:
    body, prices = prices_csv()
    uploaded = client.post(
        "/v1/datasets",
        params={"label": "price", "task": "regression"},
        files={"file": ("prices.csv", body, "text/csv")},
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    dataset = uploaded.json()
    assert (dataset["task"], dataset["label"], dataset["classes"]) == ("regression", "price", None)
    assert dataset["target_range"] == pytest.approx([min(prices), max(prices)], abs=1e-4)

    spec = {
        "seed": 4,
        "dataset": {"kind": "uploaded", "id": dataset["id"], "validation_split": 0.25},
        "model": {"hidden_layers": [8], "activation": "tanh"},
        "training": {
            "epochs": 30,
            "batch_size": 16,
            "optimizer": {"kind": "adam", "learning_rate": 0.02},
        },
    }
    job = train(client, spec)
    assert job["status"] == "succeeded", job["error"]
    assert job["spec"]["dataset"]["data"]["classes"] == 0  # 0 classes: a regression
    summary = job["summary"]
    # A loss (mean squared error) and no accuracy; what predicting the mean scores beside it,
    # and the network well under that: it learned the prices.
    assert summary["accuracy"] is None
    assert 2.0 < summary["baseline_loss"] < 8.0  # the targets' variance: 9/3 + 4/3, about
    assert 0 <= summary["loss"] < summary["baseline_loss"] / 4, summary

    result = client.get(f"/v1/experiments/{job['id']}/result").json()
    shown = result["dataset"]
    assert (shown["kind"], shown["name"], shown["id"]) == ("uploaded", "prices.csv", dataset["id"])
    assert (shown["task"], shown["n_classes"]) == ("regression", 0)
    assert (shown["n_train"], shown["n_validation"]) == (90, 30)  # no stratifying a number
    low, high = dataset["target_range"]
    assert all(low <= target <= high for target in shown["points"]["y"])  # targets as sent
    after = result["metrics"]["after"]
    assert after["accuracy"] is None and after["loss"] == pytest.approx(summary["loss"])
    assert result["metrics"]["baseline"]["loss"] == pytest.approx(summary["baseline_loss"])
    output = result["layers"][-1]
    assert (output["units"], output["activation"]) == (1, "linear")
    drawn = client.get(f"/v1/experiments/{job['id']}/plots/dataset.png")
    assert drawn.status_code == 200 and png_size(drawn.content) == (900, 600)
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204


def test_a_job_whose_dataset_is_gone_fails_saying_so(
    store: JobStore, client: httpx.Client, worker_process: Worker
) -> None:
    """Deleted between submission and training (the store refuses it while the job is
    queued, so here it leaves behind the API's back)."""
    data = {"name": "gone.csv", "samples": 60, "sample_shape": [2], "classes": 2}
    gone = "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"
    spec = ExperimentSpec.model_validate(
        {"seed": 1, "dataset": {"kind": "uploaded", "id": gone, "data": data}}
    )
    job_id = store.create(spec=spec, queue=worker_process.queue).record.id
    job = wait_for_status(client, job_id, "succeeded", "failed")
    assert job["status"] == "failed"
    assert job["error"]["type"] == "DatasetDeleted"
    assert f"dataset {gone} (gone.csv) was deleted" in job["error"]["message"]
