"""Layer-list networks: our recurrent loops equal Keras', the captured dL/dh_t equals an
independent computation, every allowed class trains (core/engine/layered.py), and an
epoch's loop carries what a training pass writes (moving statistics, dropout's counter)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.engine.graph_cache import trainer_key
from core.engine.layered import LayeredArchitecture, LayeredNetwork
from core.engine.run import _load, run_experiment
from core.engine.trainer import CompiledTrainer
from core.experiment.sizing import result_values
from core.experiment.spec import ExperimentSpec, InitializerSpec
from tests.core.test_layers_spec import KERAS_FIXTURES, keras_layers

KERAS_CLASSES = {
    "SimpleRNN": keras.layers.SimpleRNN,
    "LSTM": keras.layers.LSTM,
    "GRU": keras.layers.GRU,
}


def recurrent_spec(cell: str, *, steps: int = 9, units: int = 5, **extra: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "seed": 3,
            "dataset": {"kind": "recall", "sequence_length": steps, "n_samples": 24, "classes": 3},
            "model": {
                "layers": [{"class_name": cell, "config": {"units": units, **extra}}]
                + ([{"class_name": "Flatten"}] if extra.get("return_sequences") else [])
            },
            "training": {"epochs": 1, "batch_size": 24},
        }
    )


def network_of(spec: ExperimentSpec) -> LayeredNetwork:
    network = LayeredNetwork(LayeredArchitecture.from_spec(spec))
    network.initialize(InitializerSpec(), seed=spec.seed)
    return network


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_our_recurrent_loop_equals_keras_with_the_same_weights(cell: str) -> None:
    spec = recurrent_spec(cell, return_sequences=True)
    network = network_of(spec)
    block = network.recurrent[0]
    x = np.random.default_rng(0).normal(size=(6, 9, 4)).astype(np.float32)
    ours = tf.transpose(block.run(tf.constant(x), None), [1, 0, 2]).numpy()
    layer = KERAS_CLASSES[cell](5, return_sequences=True)
    layer.build((None, 9, 4))
    layer.set_weights([v.numpy() for v in block.variables])
    np.testing.assert_allclose(ours, layer(x).numpy(), rtol=1e-5, atol=1e-6)


def captured_through_time(spec: ExperimentSpec) -> tuple[np.ndarray, LayeredNetwork, Any]:
    """The trainer's |dL/dh_t| of one step on the whole training set, the network as it
    was before the step, and the data."""
    from core.engine.run import _load

    data = _load(spec)
    architecture = LayeredArchitecture.from_spec(spec)
    trainer = CompiledTrainer(
        trainer_key(architecture, spec.training, step_capture=True, raw=False), jit=False
    )
    trainer.reset(spec.model.initializer, seed=spec.seed, learning_rate=1e-3)
    before = network_of(spec)  # the same seed: the same starting weights
    for mine, theirs in zip(
        trainer.network.captured_variables, before.captured_variables, strict=True
    ):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    arrays = trainer.train_epoch(
        data.x_train, data.y_train, data.x_train[:1], batch_size=len(data.y_train)
    )
    assert arrays.step_through_time is not None
    return arrays.step_through_time[0], before, data


def test_through_time_gradients_equal_numpy_bptt_for_a_simple_rnn() -> None:
    spec = recurrent_spec("SimpleRNN", steps=12)
    captured, network, data = captured_through_time(spec)
    kernel, recurrent, bias, out_kernel, out_bias = (
        v.numpy().astype(np.float64) for v in network.captured_variables
    )
    x, y = data.x_train.astype(np.float64), data.y_train
    n, steps = len(y), x.shape[1]
    h = np.zeros((steps + 1, n, recurrent.shape[0]))
    for t in range(steps):
        h[t + 1] = np.tanh(x[:, t] @ kernel + bias + h[t] @ recurrent)
    logits = h[-1] @ out_kernel + out_bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dlogits = (p - np.eye(3)[y]) / n  # d mean cross-entropy / d logits
    dh = dlogits @ out_kernel.T
    norms = np.zeros(steps)
    for t in range(steps, 0, -1):
        norms[t - 1] = np.linalg.norm(dh)
        dh = (dh * (1 - h[t] ** 2)) @ recurrent.T
    np.testing.assert_allclose(captured, norms, rtol=2e-5)
    assert norms[0] < norms[-1]  # it does decay back through time


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_through_time_gradients_equal_a_tape_on_the_loop_unrolled(cell: str) -> None:
    spec = recurrent_spec(cell, steps=10)
    captured, network, data = captured_through_time(spec)
    keras_cell = {"LSTM": keras.layers.LSTMCell, "GRU": keras.layers.GRUCell}[cell](5)
    keras_cell.build((None, data.x_train.shape[-1]))
    block = network.recurrent[0]
    keras_cell.set_weights([v.numpy() for v in block.variables])
    out_kernel, out_bias = (v.numpy() for v in network.output.variables)
    x = tf.constant(data.x_train)
    states = [tf.zeros((len(data.y_train), 5))] * (2 if cell == "LSTM" else 1)
    hidden = []
    with tf.GradientTape() as tape:
        for t in range(x.shape[1]):
            h, states = keras_cell(x[:, t], states)
            states = list(states) if isinstance(states, list | tuple) else [states]
            tape.watch(h)
            hidden.append(h)
        logits = hidden[-1] @ out_kernel + out_bias
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=data.y_train, logits=logits)
        )
    gradients = tape.gradient(loss, hidden)
    expected = np.array([np.linalg.norm(g.numpy()) for g in gradients])
    np.testing.assert_allclose(captured, expected, rtol=1e-4)


@pytest.mark.parametrize("name", list(KERAS_FIXTURES))
def test_every_allowed_class_trains_and_is_captured(name: str) -> None:
    from core.experiment.spec import DatasetSpec, sample_shape

    dataset, layers = KERAS_FIXTURES[name]
    shape = sample_shape(DatasetSpec.model_validate(dataset))
    written = keras_layers(shape, layers)
    if name == "image":  # a residual block too
        block = {"class_name": "Residual", "config": {"layers": written[1:3]}}
        written = [written[0], written[1], block, *written[2:]]
    spec = ExperimentSpec.model_validate(
        {
            "seed": 1,
            "dataset": {**dataset, "n_samples": 200} if name != "image" else dataset,
            "model": {"layers": written},
            "training": {"epochs": 2},
        }
    )
    result = run_experiment(spec).result
    after = result["metrics"]["after"]
    assert np.isfinite(after["loss"]) and after["loss"] < result["metrics"]["before"]["loss"] * 1.5
    weighted = [layer["name"] for layer in result["layers"] if layer["parameters"]]
    for layer in weighted:
        parts = result["series"][layer]
        assert parts, layer
        for part in parts.values():
            if "grad_norm" in part:
                assert len(part["grad_norm"]) == 2 and all(v is not None for v in part["grad_norm"])
    if name == "sequence":
        through = result["through_time"]
        assert set(through) == {"simple_rnn_4", "lstm_5", "gru_6"}
        assert len(through["lstm_5"]["gradient_norm"]) == 2  # one per epoch
        assert len(through["lstm_5"]["timesteps"]) == 6  # a causal conv keeps 12, a pool halves it
        assert "recurrent_kernel" in result["series"]["lstm_5"]
    else:
        assert result["through_time"] is None
        assert "gamma" in result["series"]["batch_normalization_3"]
        assert "residual_2.conv2d_1" in result["series"]


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_a_layer_list_that_applies_no_activation_trains_with_nothing_to_probe(every: str) -> None:
    # A linear convolution then pooling: no layer has an activation for the probe or a
    # step point to report on, and the gradients are captured all the same.
    spec = ExperimentSpec.model_validate(
        {
            "seed": 1,
            "dataset": {"kind": "bars", "image_size": 8, "n_samples": 96},
            "model": {
                "layers": [
                    {"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3}},
                    {"class_name": "GlobalAveragePooling2D"},
                ]
            },
            "training": {"epochs": 2},
            "capture": {"every": every},
        }
    )
    result = run_experiment(spec).result
    conv = result["series"]["conv2d_1"]
    assert "activation" not in conv
    assert len(conv["kernel"]["grad_norm"]) == result["capture"]["points"]
    assert all(v is not None for v in conv["kernel"]["grad_norm"])


def test_adding_is_a_regression_with_a_baseline() -> None:
    spec = ExperimentSpec.model_validate(
        {
            "seed": 2,
            "dataset": {"kind": "adding", "sequence_length": 8, "n_samples": 128},
            "model": {"layers": [{"class_name": "GRU", "config": {"units": 8}}]},
            "training": {"epochs": 2},
        }
    )
    result = run_experiment(spec).result
    assert result["dataset"]["task"] == "regression"
    assert result["metrics"]["after"]["accuracy"] is None
    assert 0.1 < result["metrics"]["baseline"]["loss"] < 0.25  # var of U(0,1) + U(0,1) is 1/6
    assert result["layers"][-1]["activation"] == "linear"


def bars_spec(*after_dense: dict[str, Any]) -> ExperimentSpec:
    """One epoch of a small layer list on 6x6 bars: Flatten, Dense(16), then `after_dense`."""
    dense = {"class_name": "Dense", "config": {"units": 16, "activation": "relu"}}
    return ExperimentSpec.model_validate(
        {
            "seed": 4,
            "dataset": {"kind": "bars", "image_size": 6, "n_samples": 64},
            "model": {"layers": [{"class_name": "Flatten"}, dense, *after_dense]},
            "training": {"epochs": 1, "batch_size": 16},
        }
    )


DROPOUT = {"class_name": "Dropout", "config": {"rate": 0.5}}


def test_dropout_draws_the_same_on_a_plain_graph_and_on_xla() -> None:
    spec = bars_spec(DROPOUT)
    data = _load(spec)
    architecture = LayeredArchitecture.from_spec(spec)
    losses = []
    for jit in (False, True):
        key = trainer_key(architecture, spec.training, step_capture=False, raw=False)
        trainer = CompiledTrainer(key, jit=jit)
        trainer.reset(spec.model.initializer, seed=spec.seed, learning_rate=1e-2)
        arrays = [
            trainer.train_epoch(data.x_train, data.y_train, data.x_train[:8], batch_size=16)
            for _ in range(2)
        ]
        losses.append(np.concatenate([a.step_loss for a in arrays]))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert len(set(np.round(losses[0], 6))) == len(losses[0])  # each step drew anew


def _plain_trainer(spec: ExperimentSpec) -> CompiledTrainer:
    key = trainer_key(
        LayeredArchitecture.from_spec(spec), spec.training, step_capture=False, raw=False
    )
    trainer = CompiledTrainer(key, jit=False)
    trainer.reset(spec.model.initializer, seed=spec.seed, learning_rate=1e-2)
    return trainer


def test_an_epoch_writes_what_its_loop_carried_back_to_the_variables() -> None:
    spec = bars_spec({"class_name": "BatchNormalization"}, DROPOUT)
    data = _load(spec)
    trainer = _plain_trainer(spec)
    network = trainer.network
    moving = [np.array(v.numpy()) for v in network.state_variables[:2]]
    trainer.train_epoch(data.x_train, data.y_train, data.x_train[:8], batch_size=16)
    steps = -(-len(data.y_train) // 16)
    counter = next(v for v in network.state_variables if "dropout_step" in v.path)
    assert int(counter.numpy()) == steps  # one dropout draw a step, none lost
    for variable, start in zip(network.state_variables[:2], moving, strict=True):
        assert not np.array_equal(variable.numpy(), start), variable.path  # moving statistics
    for variable, value in zip(network.captured_variables, trainer.weights(), strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_a_pass_that_writes_a_variable_the_loop_does_not_carry_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = bars_spec({"class_name": "BatchNormalization"}, DROPOUT)
    data = _load(spec)
    trainer = _plain_trainer(spec)
    # as if the network forgot to name batch norm's moving statistics: their updates
    # would be lost, so the epoch refuses to trace
    kept = trainer.network.state_variables[2:]
    monkeypatch.setattr(type(trainer.network), "state_variables", property(lambda _: kept))
    with pytest.raises(RuntimeError, match="does not carry"):
        trainer.train_epoch(data.x_train, data.y_train, data.x_train[:8], batch_size=16)


def _numbers(section: Any) -> int:
    """How many numbers (nulls included) a part of a result holds."""
    if isinstance(section, dict):
        return sum(_numbers(value) for value in section.values())
    if isinstance(section, list):
        return sum(_numbers(value) for value in section)
    return int(section is None or isinstance(section, int | float))


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_the_result_bound_counts_every_number_of_the_through_time_and_channel_sections(
    every: str,
) -> None:
    def spec(timesteps: int, filters: int) -> ExperimentSpec:
        return ExperimentSpec.model_validate(
            {
                "seed": 2,
                "dataset": {"kind": "adding", "n_samples": 48, "sequence_length": timesteps},
                "model": {
                    "layers": [
                        {"class_name": "GRU", "config": {"units": 3, "return_sequences": True}},
                        {"class_name": "Conv1D", "config": {"filters": filters, "kernel_size": 2}},
                        {"class_name": "GlobalAveragePooling1D"},
                    ]
                },
                "training": {"epochs": 2, "batch_size": 16},
                "capture": {"every": every},
            }
        )

    small, long_and_wide = spec(timesteps=5, filters=2), spec(timesteps=12, filters=7)
    held = [
        _numbers(run_experiment(s).result[part])
        for s in (small, long_and_wide)
        for part in ("through_time", "channels")
    ]
    # Nothing else in the result grows with the time steps or the filters (the conv
    # kernel's histograms bin its values into the same number of bins).
    assert result_values(long_and_wide) - result_values(small) == sum(held[2:]) - sum(held[:2])
