"""Layer lists over real HTTP: Keras' own `to_json()` accepted unchanged (202), hostile
layers refused naming their path (422), the union typed in the OpenAPI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.experiment.spec import DatasetSpec, sample_shape
from tests.api.conftest import problem
from tests.core.test_layers_spec import KERAS_FIXTURES, keras_layers


def post(client: httpx.Client, spec: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/experiments", json={**spec, "device": "gpu", "seed": 1})


@pytest.mark.parametrize("name", list(KERAS_FIXTURES))
def test_keras_to_json_posted_unchanged_is_accepted(client: httpx.Client, name: str) -> None:
    dataset, layers = KERAS_FIXTURES[name]
    written = keras_layers(sample_shape(DatasetSpec.model_validate(dataset)), layers)
    response = post(client, {"dataset": dataset, "model": {"layers": written}})
    assert response.status_code == 202, response.text
    job = response.json()
    assert [layer["class_name"] for layer in job["spec"]["model"]["layers"]] == [
        layer["class_name"] for layer in written
    ]
    assert "hidden_layers" not in job["spec"]["model"]
    # what the API shows is a spec it takes again as it is
    assert post(client, job["spec"]).status_code == 202


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"class_name": "Lambda", "config": {"function": "print"}}, "model.layers[0]"),
        (
            {"class_name": "LSTM", "config": {"units": 4, "stateful": True}},
            "model.layers[0].config.stateful",
        ),
        (
            {"class_name": "LSTM", "config": {"units": 100_000}},
            "model.layers[0].config.units",
        ),
        (
            {"class_name": "GRU", "config": {"units": 4, "kernel_regularizer": {"l2": 1}}},
            "model.layers[0].config.kernel_regularizer",
        ),
    ],
)
def test_hostile_layers_are_a_422_naming_the_path(
    client: httpx.Client, layer: dict[str, Any], field: str
) -> None:
    body = problem(post(client, {"dataset": {"kind": "adding"}, "model": {"layers": [layer]}}), 422)
    assert [error["field"] for error in body["errors"]] == [field]


def test_the_openapi_types_the_layer_union_by_class_name(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    layers = schemas["ModelSpec"]["properties"]["layers"]["anyOf"][0]["items"]
    assert layers["discriminator"]["propertyName"] == "class_name"
    mapping = layers["discriminator"]["mapping"]
    assert mapping["LSTM"] == "#/components/schemas/LSTMLayer"
    assert schemas["LSTMLayer"]["properties"]["class_name"]["const"] == "LSTM"
    assert "stateful" in schemas["LSTMConfig"]["properties"]
