"""Layer lists in the spec: Keras' own serialization accepted unchanged, anything else
refused by its path (core/experiment/layers.py)."""

from __future__ import annotations

import json
from typing import Any

import keras
import pytest
from pydantic import ValidationError

from api.errors import field_errors
from core.experiment.layers import LAYER_CLASS_NAMES
from core.experiment.sizing import layered_shapes, parameter_count
from core.experiment.spec import ExperimentSpec

L = keras.layers


def keras_layers(input_shape: tuple[int, ...], layers: list[Any]) -> list[dict[str, Any]]:
    """What Keras writes for a Sequential model of `layers`: `to_json()`'s layer list."""
    model = keras.Sequential([keras.Input(input_shape), *layers])
    written: list[dict[str, Any]] = json.loads(model.to_json())["config"]["layers"]
    return written


# Every allowed Keras class, as Keras itself writes it, on the data it fits.
KERAS_FIXTURES: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "image": (
        {"kind": "digits"},
        [
            L.Conv2D(4, 3, activation="relu", padding="same"),
            L.BatchNormalization(),
            L.MaxPooling2D(),
            L.AveragePooling2D(1),
            L.Conv2D(4, (2, 2), activation="tanh"),
            L.GlobalAveragePooling2D(),
            L.Dense(8, activation="relu"),
            L.Dropout(0.1),
            L.Activation("tanh"),
            L.LayerNormalization(),
            L.Dense(10, activation="softmax"),
        ],
    ),
    "sequence": (
        {"kind": "recall", "sequence_length": 12, "classes": 3},
        [
            L.Conv1D(4, 3, padding="causal", activation="relu"),
            L.MaxPooling1D(),
            L.AveragePooling1D(1),
            L.SimpleRNN(4, return_sequences=True),
            L.LSTM(4, return_sequences=True),
            L.GRU(4, return_sequences=True),
            L.GlobalAveragePooling1D(),
            L.Reshape((2, 2)),
            L.Flatten(),
        ],
    ),
}


def spec_of(dataset: dict[str, Any], layers: list[Any], **extra: Any) -> dict[str, Any]:
    return {"dataset": dataset, "model": {"layers": layers}, "training": {"epochs": 1}, **extra}


@pytest.mark.parametrize("name", list(KERAS_FIXTURES))
def test_keras_to_json_is_accepted_unchanged(name: str) -> None:
    dataset, layers = KERAS_FIXTURES[name]
    from core.experiment.spec import DatasetSpec, sample_shape

    written = keras_layers(sample_shape(DatasetSpec.model_validate(dataset)), layers)
    assert written[0]["class_name"] == "InputLayer"
    spec = ExperimentSpec.model_validate(spec_of(dataset, written))
    shapes = layered_shapes(spec)
    assert shapes is not None
    model = keras.Sequential([keras.Input(written[0]["config"]["batch_shape"][1:]), *layers])
    if name == "image":
        # the pasted softmax Dense(10) is the output, not doubled: Keras' own count
        assert parameter_count(spec) == model.count_params()
        assert shapes.output.path == f"model.layers[{len(written) - 1}]"
    else:
        assert parameter_count(spec) == model.count_params() + (4 + 1) * 3  # output added


def test_every_allowed_class_has_a_fixture() -> None:
    covered = {type(layer).__name__ for _, layers in KERAS_FIXTURES.values() for layer in layers}
    assert covered | {"InputLayer", "Residual"} == set(LAYER_CLASS_NAMES)


def refused(payload: dict[str, Any]) -> dict[str, str]:
    """{field: reason} of a payload that must be refused, as the API names them."""
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(payload)
    return {e["field"]: e["reason"] for e in field_errors(caught.value.errors())}


DIGITS = {"kind": "digits"}
CONV = {"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3}}


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"class_name": "Lambda", "config": {"function": "os.system"}}, "model.layers[1]"),
        ({"class_name": "MyLayer", "registered_name": "Custom>MyLayer"}, "model.layers[1]"),
        ({"class_name": "Dense", "config": {"units": 10**6}}, "model.layers[1].config.units"),
        (
            {"class_name": "Dense", "config": {"units": 4, "kernel_regularizer": {"l2": 0.1}}},
            "model.layers[1].config.kernel_regularizer",
        ),
        (
            {"class_name": "Dense", "config": {"units": 4, "bias_constraint": "non_neg"}},
            "model.layers[1].config.bias_constraint",
        ),
        (
            {"class_name": "Dense", "config": {"units": 4, "trainable": False}},
            "model.layers[1].config.trainable",
        ),
        (
            {"class_name": "Dense", "config": {"units": 4, "dtype": "float16"}},
            "model.layers[1].config.dtype",
        ),
        (
            {"class_name": "Dense", "config": {"units": 4, "evil": 1}},
            "model.layers[1].config.evil",
        ),
        (
            {
                "class_name": "Dense",
                "config": {
                    "units": 4,
                    "kernel_initializer": {"class_name": "VarianceScaling", "config": {}},
                },
            },
            "model.layers[1].config.kernel_initializer",
        ),
        (
            {
                "class_name": "Dense",
                "config": {
                    "units": 4,
                    "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": 3}},
                },
            },
            "model.layers[1].config.kernel_initializer",
        ),
        (
            {"class_name": "Dropout", "config": {"rate": 0.5, "seed": 7}},
            "model.layers[1].config.seed",
        ),
        (
            {"class_name": "Flatten", "config": {"data_format": "channels_first"}},
            "model.layers[1].config.data_format",
        ),
    ],
)
def test_hostile_layers_are_refused_by_path(layer: dict[str, Any], field: str) -> None:
    errors = refused(spec_of(DIGITS, [CONV, layer, {"class_name": "Flatten", "config": {}}]))
    assert field in errors, errors


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stateful", True),
        ("unroll", True),
        ("go_backwards", True),
        ("dropout", 0.2),
        ("return_state", True),
        ("recurrent_regularizer", {"class_name": "L2"}),
    ],
)
def test_recurrent_settings_other_than_neutral_are_refused(key: str, value: Any) -> None:
    lstm = {"class_name": "LSTM", "config": {"units": 4, key: value}}
    errors = refused(spec_of({"kind": "adding"}, [lstm]))
    assert f"model.layers[0].config.{key}" in errors, errors


def test_shapes_that_do_not_fit_are_refused_by_path() -> None:
    lstm = {"class_name": "LSTM", "config": {"units": 4}}
    assert "model.layers[0]" in refused(spec_of(DIGITS, [lstm]))  # an image is no sequence
    mismatch = {"class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1]}}
    errors = refused(spec_of(DIGITS, [mismatch, CONV, {"class_name": "Flatten"}]))
    assert "[8, 8, 1]" in errors["model.layers[0].config.batch_shape"]
    block = {"class_name": "Residual", "config": {"layers": [CONV]}}
    assert (
        "residual"
        in refused(spec_of(DIGITS, [block, {"class_name": "Flatten"}]))["model.layers[0]"]
    )
    assert "Flatten" in refused(spec_of(DIGITS, [CONV]))["model.layers"]
    softmax = {"class_name": "Dense", "config": {"units": 4, "activation": "softmax"}}
    flat = {"class_name": "Flatten"}
    errors = refused(spec_of(DIGITS, [flat, softmax]))
    assert "model.layers[1].config.activation" in errors


def test_layers_and_the_mlp_fields_are_not_both_given() -> None:
    payload = spec_of(DIGITS, [{"class_name": "Flatten"}])
    payload["model"]["hidden_layers"] = [5]
    assert "hidden_layers" in refused(payload)["model.layers"]


def test_a_layer_list_is_bounded_by_its_work() -> None:
    big = {"class_name": "Conv2D", "config": {"filters": 64, "kernel_size": 3, "padding": "same"}}
    images = {"kind": "bars", "image_size": 64}
    payload = spec_of(images, [big, big, {"class_name": "GlobalAveragePooling2D"}])
    payload["training"] = {"epochs": 1, "batch_size": 64}
    assert "training.batch_size" in refused(payload)
    payload = spec_of(images, [big, {"class_name": "Flatten"}])
    payload["training"] = {"epochs": 40, "batch_size": 32}
    assert "training.epochs" in refused(payload)
    lstm = {"class_name": "LSTM", "config": {"units": 4, "return_sequences": True}}
    long = spec_of(
        {"kind": "adding", "sequence_length": 1000}, [lstm] * 2 + [{"class_name": "Flatten"}]
    )
    assert "dataset.sequence_length" in refused(long)
    long = spec_of({"kind": "adding", "sequence_length": 1000}, [lstm, {"class_name": "Flatten"}])
    long["training"] = {"epochs": 100}
    assert "training.epochs" in refused(long)
