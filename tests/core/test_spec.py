"""The experiment spec: defaults are the tutorial, every limit is refused by name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.experiment.layer_configs import KerasActivation
from core.experiment.limits import Limits, SpecLimitError
from core.experiment.sizing import layer_widths, parameter_count, result_values
from core.experiment.spec import (
    Activation,
    CaptureEvery,
    DatasetKind,
    DatasetSpec,
    ExperimentSpec,
    InitializerKind,
    OptimizerKind,
    dataset_shape,
    output_units,
)


def error_of(payload: dict[str, Any]) -> str:
    """The validation message for a payload that must be refused."""
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(payload)
    return str(caught.value)


def test_empty_spec_is_the_tutorial() -> None:
    spec = ExperimentSpec.model_validate({})
    assert spec.dataset.kind is DatasetKind.CIRCLES
    assert (spec.dataset.n_samples, spec.dataset.factor, spec.dataset.noise) == (1000, 0.5, 0.1)
    assert spec.dataset.validation_split == 0
    assert not spec.dataset.standardized  # the tutorial trains on raw make_circles output
    assert spec.model.hidden_layers == [5, 5, 5, 5]
    assert spec.model.activations == [Activation.SIGMOID] * 4
    assert spec.model.initializer.kind is InitializerKind.RANDOM_NORMAL
    assert (spec.model.initializer.mean, spec.model.initializer.stddev) == (0.0, 1.0)
    assert spec.training.optimizer.kind is OptimizerKind.RMSPROP
    assert spec.training.optimizer.learning_rate is None  # Keras' default, 0.001
    assert (spec.training.epochs, spec.training.batch_size) == (100, 32)
    assert spec.capture.every is CaptureEvery.EPOCH
    assert layer_widths(spec) == [2, 5, 5, 5, 5, 1]
    assert parameter_count(spec) == 15 + 3 * 30 + 6  # 2-5, three 5-5, 5-1


def test_a_pasted_layer_takes_every_mlp_activation_and_softmax() -> None:
    # Both enums are spelled out (mypy needs their members); this keeps them in step, as
    # the engine maps each Keras activation but softmax back to the MLP's (blocks.probe_kind).
    keras_names = {activation.value for activation in KerasActivation}
    assert keras_names == {activation.value for activation in Activation} | {"softmax"}


def test_seed_is_drawn_once_and_recorded() -> None:
    first, second = ExperimentSpec(), ExperimentSpec()
    assert first.seed != second.seed
    again = ExperimentSpec.model_validate_json(json.dumps(first.to_json_dict()))
    assert again == first


def test_real_datasets_are_standardized_by_convention() -> None:
    spec = ExperimentSpec.model_validate({"dataset": {"kind": "digits"}})
    assert spec.dataset.standardized
    assert layer_widths(spec) == [64, 5, 5, 5, 5, 10]


@pytest.mark.parametrize(
    ("payload", "field", "limit"),
    [
        ({"training": {"epochs": Limits.EPOCHS + 1}}, "training.epochs", str(Limits.EPOCHS)),
        ({"training": {"epochs": 0}}, "training.epochs", "greater than or equal to 1"),
        ({"dataset": {"n_samples": Limits.SAMPLES + 1}}, "dataset.n_samples", "20000"),
        ({"model": {"hidden_layers": [5] * 33}}, "model.hidden_layers", "at most 32"),
        ({"model": {"hidden_layers": [513]}}, "model.hidden_layers.0", "512"),
        ({"model": {"hidden_layers": []}}, "model.hidden_layers", "at least 1"),
        ({"capture": {"histogram_bins": 1000}}, "capture.histogram_bins", "200"),
        ({"capture": {"probe_size": Limits.PROBE_SIZE + 1}}, "capture.probe_size", "4096"),
        ({"training": {"batch_size": 0}}, "training.batch_size", "greater than or equal to 1"),
        ({"model": {"activation": "softplus"}}, "model.activation", "sigmoid"),
        ({"model": {"initializer": {"kind": "random_normal", "stddev": 0}}}, "stddev", "greater"),
        ({"dataset": {"kind": "mnist"}}, "dataset.kind", "circles"),
        ({"training": {"optimizer": {"learning_rate": -1}}}, "learning_rate", "greater than 0"),
        ({"device": "tpu"}, "device", "'cpu' or 'gpu'"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
    ],
)
def test_bad_values_name_field_and_limit(payload: dict[str, Any], field: str, limit: str) -> None:
    message = error_of(payload)
    assert field in message
    assert limit in message


def test_unknown_fields_are_refused() -> None:
    assert "Extra inputs are not permitted" in error_of({"modle": {}})
    assert "dataset.sampels" in error_of({"dataset": {"sampels": 10}})


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"model": {"hidden_layers": [512] * 8}}, "model.hidden_layers"),
        ({"training": {"batch_size": 2000}}, "training.batch_size"),
        ({"training": {"epochs": 1000}, "dataset": {"n_samples": 20000}}, "training.epochs"),
        ({"capture": {"every": "step"}, "training": {"epochs": 1000}}, "capture.every"),
        ({"capture": {"raw": True}, "model": {"hidden_layers": [400] * 5}}, "capture.raw"),
        ({"model": {"residual": True, "hidden_layers": [4, 8, 4]}}, "model.residual"),
        ({"model": {"activation": ["tanh", "relu"]}}, "model.activation"),
        ({"training": {"clipnorm": 1, "clipvalue": 1}}, "training.clipnorm"),
        ({"model": {"initializer": {"minval": 1, "maxval": 0}}}, "model.initializer.minval"),
    ],
)
def test_limits_spanning_fields_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(payload)
    message = str(caught.value)
    assert field in message
    context = caught.value.errors()[0].get("ctx", {})
    if isinstance(context.get("error"), SpecLimitError):
        assert context["error"].field == field


@settings(max_examples=60, deadline=None)
@given(
    layers=st.lists(st.integers(1, 64), min_size=1, max_size=6),
    epochs=st.integers(1, 200),
    batch=st.integers(1, 256),
    samples=st.integers(8, 2000),
)
def test_valid_specs_round_trip_and_respect_limits(
    layers: list[int], epochs: int, batch: int, samples: int
) -> None:
    payload = {
        "model": {"hidden_layers": layers},
        "training": {"epochs": epochs, "batch_size": batch},
        "dataset": {"n_samples": samples},
    }
    try:
        spec = ExperimentSpec.model_validate(payload)
    except ValidationError as error:
        # Only the limits spanning fields may refuse these in-range values.
        cause = error.errors()[0]["ctx"]["error"]
        assert isinstance(cause, SpecLimitError)
        assert cause.field in {"training.batch_size", "training.epochs"}
        return
    assert ExperimentSpec.model_validate(spec.to_json_dict()) == spec
    assert parameter_count(spec) <= Limits.PARAMETERS


@pytest.mark.parametrize(
    ("dataset", "least"),
    [
        ({"kind": "gaussian", "n_samples": 10, "classes": 20}, 40),
        ({"kind": "spiral", "n_samples": 39, "classes": 20}, 40),
        ({"kind": "blobs", "n_samples": 11, "centers": 6}, 12),
    ],
)
def test_generated_sets_need_two_samples_per_class(dataset: dict[str, Any], least: int) -> None:
    payload = {"dataset": dataset, "training": {"batch_size": 8}}
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(payload)
    cause = caught.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, SpecLimitError)
    assert cause.field == "dataset.n_samples"
    assert f"at least {least}" in cause.message
    enough = {**dataset, "n_samples": least}
    assert ExperimentSpec.model_validate({**payload, "dataset": enough}).dataset.n_samples == least


EVERY_LIMIT = {
    "dataset": {"n_samples": Limits.SAMPLES},
    "model": {"hidden_layers": [Limits.WIDTH] * 4},
    "training": {"epochs": Limits.EPOCHS, "batch_size": Limits.BATCH_SIZE},
}


def test_a_spec_at_every_limit_is_refused_for_its_total_work() -> None:
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate(EVERY_LIMIT)
    cause = caught.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, SpecLimitError)
    assert cause.field == "training.epochs"
    # epochs x samples x parameters, each named, and the limit
    assert "1,000 epochs x 20,000 training samples x 790,017 parameters" in cause.message
    assert "1.58e+13" in cause.message and f"{Limits.WORK:.3g}" in cause.message


def test_work_is_epochs_times_training_samples_times_parameters() -> None:
    # digits through three 512-wide layers: 100 x 1797 x 563,722 ~ 1e11 fits
    wide = {"dataset": {"kind": "digits"}, "model": {"hidden_layers": [512] * 3}}
    spec = ExperimentSpec.model_validate(wide)
    work = spec.training.epochs * 1797 * parameter_count(spec)
    assert work < Limits.WORK < 2 * work
    # twice the epochs is over; the same with a validation part is under again
    twice = {**wide, "training": {"epochs": 200}}
    assert "training.epochs" in error_of(twice)
    held_out = {**twice, "dataset": {"kind": "digits", "validation_split": 0.5}}
    assert ExperimentSpec.model_validate(held_out).training.epochs == 200


@pytest.mark.parametrize("left_out", ["weights", "gradients"])
def test_raw_values_count_only_the_tensors_captured(left_out: str) -> None:
    # 12,651 parameters x 100 epochs: 2.53M values for both kinds, 1.27M for one
    payload: dict[str, Any] = {"model": {"hidden_layers": [110, 110]}, "capture": {"raw": True}}
    assert "capture.raw" in error_of(payload)
    one_kind = {**payload, "capture": {"raw": True, left_out: False}}
    assert parameter_count(ExperimentSpec.model_validate(one_kind)) == 12_651


def test_a_result_stays_near_ten_megabytes_whatever_the_spec() -> None:
    # 20,000 steps captured, each with 4 hidden layers of 512: ~2.2M numbers, ~45 MB of JSON
    worst = {
        "dataset": {"n_samples": 20_000},
        "model": {"hidden_layers": [512] * 4},
        "training": {"epochs": 1, "batch_size": 1},
        "capture": {"every": "step", "probe_size": 4096, "histogram_bins": 200},
    }
    assert "capture: the result would hold 2,260,050 numbers" in error_of(worst)
    # the tutorial captured at every step fits
    tutorial = ExperimentSpec.model_validate({"capture": {"every": "step"}})
    assert result_values(tutorial) <= Limits.RESULT_VALUES
    # without the statistics the limit counts, the same run fits too
    lean = {**worst, "capture": {**worst["capture"], "gradients": False, "activations": False}}
    assert "capture:" in error_of(lean)
    lean["dataset"] = {"n_samples": 8_000}
    assert ExperimentSpec.model_validate(lean).training.batch_size == 1


# ------------------------------------------------------------------ uploaded datasets

UPLOADED_ID = "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"
UPLOADED_DATA = {"name": "mine.csv", "samples": 200, "sample_shape": [5], "classes": 3}


def test_an_uploaded_dataset_takes_its_own_fields_only() -> None:
    spec = DatasetSpec.model_validate({"kind": "uploaded", "id": UPLOADED_ID})
    assert spec.standardized and not spec.generated and spec.data is None
    for field, value in [("n_samples", 100), ("noise", 0.1), ("image_size", 8)]:
        with pytest.raises(ValidationError, match=f"only generated sets take {field}"):
            DatasetSpec.model_validate({"kind": "uploaded", "id": UPLOADED_ID, field: value})
    with pytest.raises(ValidationError, match="named by its id"):
        DatasetSpec.model_validate({"kind": "uploaded"})
    with pytest.raises(ValidationError, match="only an uploaded dataset takes it"):
        DatasetSpec.model_validate({"kind": "circles", "id": UPLOADED_ID})


def test_an_uploaded_dataset_is_checked_once_its_shape_is_known() -> None:
    dataset = {"kind": "uploaded", "id": UPLOADED_ID, "data": UPLOADED_DATA}
    spec = ExperimentSpec.model_validate({"dataset": dataset})
    assert dataset_shape(spec.dataset) == (200, 5, 3) and output_units(spec.dataset) == 3
    assert ExperimentSpec.model_validate(spec.model_dump(mode="json")) == spec
    assert set(spec.model_dump()["dataset"]) == {
        "kind",
        "id",
        "data",
        "validation_split",
        "standardize",
    }
    assert "id" not in ExperimentSpec().model_dump()["dataset"]
    small = {**dataset, "data": {**UPLOADED_DATA, "samples": 20}}
    with pytest.raises(ValidationError, match="batch_size"):
        ExperimentSpec.model_validate({"dataset": small, "training": {"batch_size": 32}})
    # Before the service fills in its shape, only the fields are checked.
    ExperimentSpec.model_validate(
        {"dataset": {"kind": "uploaded", "id": UPLOADED_ID}, "training": {"batch_size": 4096}}
    )
