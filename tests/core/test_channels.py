"""Per-channel gradient norms of convolutions (`result.channels`): the compiled step's
equal an independent computation, they are laid out per capture point beside the points,
and networks without a convolution have none."""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.engine.graph_cache import trainer_key
from core.engine.layered import LayeredArchitecture
from core.engine.run import _load, run_experiment
from core.engine.trainer import CompiledTrainer
from core.experiment.layer_shapes import conv_channels
from core.experiment.limits import Limits
from core.experiment.sizing import result_values
from core.experiment.spec import ExperimentSpec
from tests.core.test_layered import network_of, recurrent_spec
from tests.core.test_spec import error_of

RELU_SAME = {"activation": "relu", "padding": "same"}
IMAGE_LAYERS: list[dict[str, Any]] = [
    {"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3, **RELU_SAME}},
    {
        "class_name": "Residual",
        "config": {
            "layers": [
                {"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3, **RELU_SAME}}
            ]
        },
    },
    {"class_name": "Conv2D", "config": {"filters": 6, "kernel_size": [2, 3]}},
    {"class_name": "Flatten"},
]
SEQUENCE_LAYERS: list[dict[str, Any]] = [
    {"class_name": "Conv1D", "config": {"filters": 5, "kernel_size": 3, "activation": "tanh"}},
    {"class_name": "Flatten"},
]


def conv_spec(
    layers: list[dict[str, Any]], *, every: str = "epoch", gradients: bool = True
) -> ExperimentSpec:
    image = layers is IMAGE_LAYERS
    dataset = (
        {"kind": "digits"}
        if image
        else {"kind": "recall", "sequence_length": 9, "n_samples": 48, "classes": 3}
    )
    return ExperimentSpec.model_validate(
        {
            "seed": 4,
            "dataset": dataset,
            "model": {"layers": layers},
            "training": {"epochs": 2, "batch_size": 64 if image else 16},
            "capture": {"every": every, "gradients": gradients},
        }
    )


def keras_model(
    spec: ExperimentSpec, layers: list[dict[str, Any]]
) -> tuple[keras.Model, list[keras.Variable]]:
    """The spec's network out of Keras' own layers (a residual block as x + f(x)), with
    the weights our network starts from, and its convolutions' kernels."""
    ours = network_of(spec)
    values = iter(v.numpy() for v in ours.captured_variables)
    x = inputs = keras.Input(ours.architecture.shapes.hidden[0].input_shape)
    kernels = []

    def conv(config: dict[str, Any], h: Any) -> Any:
        make = keras.layers.Conv2D if len(h.shape) == 4 else keras.layers.Conv1D
        layer = make(**config)
        out = layer(h)
        layer.set_weights([next(values), next(values)])
        kernels.append(layer.kernel)
        return out

    for entry in layers:
        name, config = entry["class_name"], entry.get("config", {})
        if name == "Residual":
            x = x + conv(config["layers"][0]["config"], x)
        elif name == "Flatten":
            x = keras.layers.Flatten()(x)
        else:
            x = conv(config, x)
    output = keras.layers.Dense(ours.output_units)
    logits = output(x)
    output.set_weights([next(values), next(values)])
    return keras.Model(inputs, logits), kernels


@pytest.mark.parametrize("layers", [IMAGE_LAYERS, SEQUENCE_LAYERS], ids=["conv2d", "conv1d"])
def test_per_channel_gradient_norms_equal_a_keras_tape_reduced_by_numpy(
    layers: list[dict[str, Any]],
) -> None:
    spec = conv_spec(layers)
    data = _load(spec)
    architecture = LayeredArchitecture.from_spec(spec)
    trainer = CompiledTrainer(
        trainer_key(architecture, spec.training, step_capture=True, raw=False), jit=False
    )
    trainer.reset(spec.model.initializer, seed=spec.seed, learning_rate=1e-3)
    arrays = trainer.train_epoch(
        data.x_train, data.y_train, data.x_train[:1], batch_size=len(data.y_train)
    )
    assert arrays.step_channels is not None
    captured = arrays.step_channels[0]

    model, kernels = keras_model(spec, layers)
    with tf.GradientTape() as tape:
        logits = model(data.x_train)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=data.y_train, logits=logits)
        )
    gradients = [g.numpy().astype(np.float64) for g in tape.gradient(loss, kernels)]
    expected = np.concatenate(
        [np.sqrt(np.square(g).sum(axis=tuple(range(g.ndim - 1)))) for g in gradients]
    )
    assert captured.shape == expected.shape == (sum(int(k.shape[-1]) for k in kernels),)
    np.testing.assert_allclose(captured, expected, rtol=1e-4, atol=1e-9)
    # The channels' norms make up the kernel's: the same gradient, cut by channel.
    ends = np.cumsum([int(k.shape[-1]) for k in kernels])
    layers_filters = conv_channels(architecture.shapes.layers)
    for (name, filters), gradient, end in zip(layers_filters, gradients, ends, strict=True):
        assert gradient.shape[-1] == filters, name
        np.testing.assert_allclose(
            np.linalg.norm(captured[end - filters : end]), np.linalg.norm(gradient), rtol=1e-5
        )


def test_a_result_keeps_each_convolutions_channels_at_every_capture_point() -> None:
    result = run_experiment(conv_spec(IMAGE_LAYERS, every="step")).result
    channels = result["channels"]
    assert list(channels) == ["conv2d_1", "residual_2.conv2d_1", "conv2d_3"]
    capture = result["capture"]
    for name, filters in zip(channels, (4, 4, 6), strict=True):
        entry = channels[name]
        assert entry["channels"] == list(range(filters))
        assert entry["epoch"] == capture["epoch"] and entry["step"] == capture["step"]
        norms = np.array(entry["gradient_norm"], dtype=np.float64)
        assert norms.shape == (capture["points"], filters)
        np.testing.assert_allclose(entry["initial"], norms[0])
        # A step point's kernel gradient norm is its channels' norms together.
        kernel = np.array(result["series"][name]["kernel"]["grad_norm"], dtype=np.float64)
        np.testing.assert_allclose(np.linalg.norm(norms, axis=1), kernel, rtol=1e-5)


def test_an_epoch_point_holds_the_mean_over_its_steps() -> None:
    by_step = run_experiment(conv_spec(SEQUENCE_LAYERS, every="step")).result
    by_epoch = run_experiment(conv_spec(SEQUENCE_LAYERS)).result
    steps = np.array(by_step["channels"]["conv1d_1"]["gradient_norm"], dtype=np.float64)
    epochs = np.array(by_epoch["channels"]["conv1d_1"]["gradient_norm"], dtype=np.float64)
    per_epoch = np.array(by_step["capture"]["epoch"])
    expected = [steps[per_epoch == epoch].mean(axis=0) for epoch in (1, 2)]
    np.testing.assert_allclose(epochs, expected, rtol=1e-5)
    assert by_epoch["channels"]["conv1d_1"]["epoch"] == [1, 2]


@pytest.mark.parametrize(
    "spec",
    [
        ExperimentSpec.model_validate({"training": {"epochs": 2}}),
        recurrent_spec("LSTM"),
        conv_spec(SEQUENCE_LAYERS, gradients=False),
    ],
    ids=["mlp", "lstm", "conv-without-gradients"],
)
def test_networks_without_a_convolution_or_gradients_have_no_channels(
    spec: ExperimentSpec,
) -> None:
    assert run_experiment(spec).result["channels"] is None


def wide_conv(filters: int, **capture: Any) -> dict[str, Any]:
    """digits (1,797 samples) one sample a step for two epochs, captured every step:
    3,594 points, through one 1x1 convolution of `filters`."""
    return {
        "dataset": {"kind": "digits"},
        "model": {
            "layers": [
                {"class_name": "Conv2D", "config": {"filters": filters, "kernel_size": 1}},
                {"class_name": "GlobalAveragePooling2D"},
            ]
        },
        "training": {"epochs": 2, "batch_size": 1},
        "capture": {"every": "step", **capture},
    }


def test_channels_count_toward_the_result_bound_and_too_many_are_refused() -> None:
    narrow = ExperimentSpec.model_validate(wide_conv(16))
    points = 2 * 1797
    message = error_of(wide_conv(256))
    assert "capture: the result would hold" in message and "per convolution channel" in message
    held = re.search(r"would hold ([\d,]+) numbers", message)
    assert held is not None
    held_values = int(held[1].replace(",", ""))
    # The same network but for its filters: the difference is one norm per channel and
    # capture point, and each channel's number and initial norm.
    assert held_values - result_values(narrow) == (points + 2) * (256 - 16)
    assert held_values > Limits.RESULT_VALUES
    # Without gradients there are no norms to keep, and the same network fits.
    lean = ExperimentSpec.model_validate(wide_conv(256, gradients=False))
    assert result_values(lean) <= Limits.RESULT_VALUES
