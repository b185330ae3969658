"""Properties of the spec model over specs drawn across and beyond every limit.

Whatever a client sends, validation either accepts a spec that keeps every
limit and survives a JSON round trip, or refuses it with a ValidationError
whose every entry names a field: one the client sent, or one of the spec's own
(a default that a limit spanning fields blames, such as the batch size of a
tiny dataset). It never raises anything else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.datasets.builtin import load_dataset
from core.experiment.limits import Limits, SpecLimitError
from core.experiment.sizing import layer_widths, parameter_count, steps_per_epoch
from core.experiment.spec import (
    CaptureEvery,
    ExperimentSpec,
    dataset_shape,
    sample_shape,
    split_sizes,
)

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def around(limit: int, low: int = 0) -> st.SearchStrategy[int]:
    """Integers on both sides of a limit, its edges drawn often."""
    return st.one_of(
        st.sampled_from([low - 1, low, limit, limit + 1]), st.integers(low - 1, limit + 1)
    )


sections = st.fixed_dictionaries(
    {},
    optional={
        "dataset": st.fixed_dictionaries(
            {},
            optional={
                "kind": st.sampled_from(
                    [*("circles", "moons", "xor", "gaussian", "spiral", "blobs"), "digits", "x"]
                ),
                # Small sets too, where a class can go missing.
                "n_samples": around(Limits.SAMPLES, 8) | st.integers(8, 64),
                "classes": around(Limits.CLASSES, 2),
                "centers": around(Limits.CENTERS, 2),
                "validation_split": st.floats(-0.1, 0.6) | st.sampled_from([0.0, 0.5]),
            },
        ),
        "model": st.fixed_dictionaries(
            {},
            optional={
                "hidden_layers": st.lists(
                    around(Limits.WIDTH, 1), min_size=0, max_size=Limits.HIDDEN_LAYERS + 1
                ),
                "activation": st.sampled_from(["sigmoid", "tanh", "relu", "nope"]),
                "residual": st.booleans(),
            },
        ),
        "training": st.fixed_dictionaries(
            {},
            optional={
                "epochs": around(Limits.EPOCHS, 1),
                "batch_size": around(Limits.BATCH_SIZE, 1) | st.integers(1, 16),
                "clipnorm": st.none() | st.floats(0, 10),
            },
        ),
        "capture": st.fixed_dictionaries(
            {},
            optional={
                "every": st.sampled_from(["epoch", "step"]),
                "raw": st.booleans(),
                "histogram_bins": around(Limits.HISTOGRAM_BINS, 2),
                "histogram_snapshots": around(Limits.HISTOGRAM_SNAPSHOTS, 2),
                "probe_size": around(Limits.PROBE_SIZE, 1),
            },
        ),
        "seed": around(Limits.SEED),
        "name": st.text(max_size=Limits.NAME_LENGTH + 2),
        "device": st.sampled_from(["cpu", "gpu", "tpu"]),
    },
)


def sent(payload: dict[str, Any], path: str) -> bool:
    """True when the dotted `path` (indices as .N) starts at a key the client sent."""
    node: Any = payload
    for part in path.split(".")[:2]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            node = node[int(part)] if int(part) < len(node) else None
        else:
            return False
    return True


def in_model(path: str) -> bool:
    """True when the dotted `path` is a field of the spec model (indices as .N)."""
    model: Any = ExperimentSpec
    for part in path.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return part.isdigit()  # an index into a list field
        if part not in fields:
            return False
        model = fields[part].annotation
    return True


def blamed_fields(error: ValidationError) -> list[str]:
    fields = []
    for item in error.errors():
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, SpecLimitError):
            fields.append(cause.field)
        else:
            fields.append(".".join(str(part) for part in item["loc"] if not _is_tag(part)))
    return fields


def _is_tag(part: Any) -> bool:
    """A pydantic union member tag such as `list[...]` or `str-enum[...]`."""
    return isinstance(part, str) and "[" in part


@PROPERTIES
@given(payload=sections)
def test_a_spec_is_accepted_within_every_limit_or_refused_by_field(payload: dict[str, Any]) -> None:
    try:
        spec = ExperimentSpec.model_validate(payload)
    except ValidationError as error:
        for field in blamed_fields(error):
            assert field and (sent(payload, field) or in_model(field)), (field, payload)
        return

    assert ExperimentSpec.model_validate_json(spec.model_dump_json()) == spec
    assert parameter_count(spec) <= Limits.PARAMETERS
    steps = spec.training.epochs * steps_per_epoch(spec)
    assert steps <= Limits.STEPS
    n_train, _ = split_sizes(spec.dataset)
    assert spec.training.epochs * n_train * parameter_count(spec) <= Limits.WORK
    assert spec.capture.probe_size <= Limits.PROBE_SIZE
    if spec.capture.every is CaptureEvery.STEP:
        assert steps <= Limits.STEP_CAPTURE_POINTS
    assert len(spec.model.hidden_layers) <= Limits.HIDDEN_LAYERS
    assert all(1 <= width <= Limits.WIDTH for width in spec.model.hidden_layers)
    assert_loads_as_promised(spec)


def assert_loads_as_promised(spec: ExperimentSpec) -> None:
    """The data loads (scikit-learn only) with the shape and classes the limits assumed."""
    data = load_dataset(spec.dataset, seed=spec.seed)
    _, features, classes = dataset_shape(spec.dataset)
    n_train, n_val = split_sizes(spec.dataset)
    assert data.x_train.shape == (n_train, *sample_shape(spec.dataset))
    assert data.flattened().x_train.shape == (n_train, features)
    assert data.flattened().x_val.shape == (n_val, features)
    assert data.n_classes == classes
    assert layer_widths(spec)[-1] == (1 if classes <= 2 else classes)
    if spec.dataset.regression:
        assert classes == 0 and np.isfinite(data.y_train).all()
        return
    # Every class the output layer has a unit for is in the training part.
    assert set(np.unique(data.y_train)) == set(range(classes))


@PROPERTIES
@given(
    section=st.sampled_from(["", "dataset", "model", "training", "capture"]),
    key=st.text(st.characters(categories=["Ll"]), min_size=1, max_size=12),
)
def test_an_unknown_key_anywhere_is_refused_by_its_path(section: str, key: str) -> None:
    known = set(ExperimentSpec.model_fields)
    if section:
        annotation = ExperimentSpec.model_fields[section].annotation
        known = set(getattr(annotation, "model_fields", {}))
    if key in known:
        return
    payload: dict[str, Any] = {section: {key: 1}} if section else {key: 1}
    try:
        ExperimentSpec.model_validate(payload)
    except ValidationError as error:
        path = f"{section}.{key}" if section else key
        assert path in blamed_fields(error)
    else:
        raise AssertionError(f"accepted an unknown key: {payload}")


datasets = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(
            [
                *("circles", "moons", "xor", "gaussian", "spiral", "blobs"),
                *("digits", "iris", "wine", "bars", "adding", "recall"),
            ]
        ),
        "n_samples": st.integers(8, 64) | around(Limits.SAMPLES, 8),
        "sequence_length": st.integers(2, 40) | around(Limits.SEQUENCE_LENGTH, 2),
        "image_size": st.integers(4, 12) | around(Limits.IMAGE_SIZE, 4),
        "classes": st.integers(2, Limits.CLASSES),
        "centers": st.integers(2, Limits.CENTERS),
        "validation_split": st.sampled_from([0.0, 0.5]) | st.floats(0.0, 0.5),
    }
)


@PROPERTIES
@given(dataset=datasets, seed=st.integers(0, Limits.SEED))
def test_every_accepted_dataset_loads_with_the_classes_it_promised(
    dataset: dict[str, Any], seed: int
) -> None:
    payload = {"seed": seed, "dataset": dataset, "training": {"epochs": 1, "batch_size": 1}}
    try:
        spec = ExperimentSpec.model_validate(payload)
    except ValidationError as error:
        allowed = {"dataset.n_samples", "dataset.validation_split"}
        allowed |= {"dataset.sequence_length", "dataset.image_size"}
        assert set(blamed_fields(error)) <= allowed
        return
    assert_loads_as_promised(spec)
