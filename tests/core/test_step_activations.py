"""A step point's activation statistics are those of the step's own training batch, in the
forward pass it trained on (the weights before the step, its real rows only); an epoch's
start and end stay on the probe batch (core/experiment/result.py, "Activation fractions").

Each is checked against an independent computation: the batch rebuilt from the epoch's
order, the layers run in NumPy or by Keras' own layers on the weights the raw capture
kept from before that step, the statistics computed in NumPy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

from core.datasets.builtin import load_dataset
from core.engine.graph_cache import trainer_key
from core.engine.layered import LayeredArchitecture
from core.engine.network import Architecture
from core.engine.trainer import CompiledTrainer, EpochArrays
from core.experiment.spec import ExperimentSpec

Layer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # x -> (z, a)


def numpy_stats(z: np.ndarray, a: np.ndarray, kind: str) -> np.ndarray:
    """Mean, S.D., saturated, dead, negative of one layer: z and a (..., units), every
    leading axis (samples, positions) a row."""
    units = z.shape[-1]
    z, a = z.reshape(-1, units).astype(np.float64), a.reshape(-1, units).astype(np.float64)
    saturated = dead = np.nan
    if kind == "sigmoid":
        saturated = float(np.mean(a * (1 - a) < 0.1 * 0.25))
    elif kind == "tanh":
        saturated = float(np.mean(1 - a**2 < 0.1))
    elif kind == "relu":
        dead = float(np.mean(np.all(z <= 0, axis=0)))
    return np.array([a.mean(), a.std(), saturated, dead, np.nan])


def assert_stats(mine: np.ndarray, want: np.ndarray, what: str) -> None:
    np.testing.assert_allclose(mine, want, rtol=2e-5, atol=2e-6, err_msg=what)


def train_one_epoch(
    spec: ExperimentSpec, architecture: Any, x: np.ndarray, y: np.ndarray, probe: np.ndarray
) -> tuple[CompiledTrainer, EpochArrays, np.ndarray | None]:
    """A trainer after one epoch, the epoch's arrays, and the probe's statistics before it."""
    # raw capture keeps every variable as it was before each step
    key = trainer_key(architecture, spec.training, step_capture=True, raw=True)
    trainer = CompiledTrainer(key, jit=False)
    trainer.reset(spec.model.initializer, seed=spec.seed, learning_rate=1e-2)
    start = trainer.probe_now(probe)
    arrays = trainer.train_epoch(x, y, probe, batch_size=spec.training.batch_size)
    assert arrays.step_activation_stats is not None and arrays.step_weights is not None
    return trainer, arrays, start


def batches(x: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The rows each step trained on: whole batches, then the short last one's real rows."""
    return [x[start : start + batch_size] for start in range(0, len(x), batch_size)]


def mlp_layers(weights: list[np.ndarray], kinds: list[str]) -> list[Layer]:
    functions: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "relu": lambda z: np.maximum(z, 0),
        "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    }

    def layer(kernel: np.ndarray, bias: np.ndarray, kind: str) -> Layer:
        def run(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            z = h.astype(np.float64) @ kernel + bias
            return z, functions[kind](z)

        return run

    return [layer(weights[2 * i], weights[2 * i + 1], kind) for i, kind in enumerate(kinds)]


def run_layers(layers: list[Layer], kinds: list[str], x: np.ndarray) -> np.ndarray:
    rows, h = [], x
    for layer, kind in zip(layers, kinds, strict=True):
        z, h = layer(h)
        rows.append(numpy_stats(z, h, kind))
    return np.stack(rows)


def test_an_mlps_step_points_are_its_training_batches_and_its_edges_the_probe() -> None:
    kinds = ["relu", "tanh", "sigmoid"]
    spec = ExperimentSpec.model_validate(
        {
            "seed": 5,
            "dataset": {"kind": "moons", "n_samples": 100, "noise": 0.2},
            "model": {"hidden_layers": [6, 5, 4], "activation": kinds},
            "training": {"batch_size": 16},
        }
    )
    data = load_dataset(spec.dataset, seed=spec.seed)
    order = np.random.default_rng(0).permutation(len(data.y_train))
    x, y, probe = data.x_train[order], data.y_train[order], data.x_train[:40]
    assert len(x) % 16, "the last batch is padded and masked"
    architecture = Architecture.from_spec(spec.model, n_features=2, n_outputs=1)
    _, arrays, start_stats = train_one_epoch(spec, architecture, x, y, probe)
    assert arrays.step_weights is not None and arrays.step_activation_stats is not None
    for step, rows in enumerate(batches(x, 16)):
        before = [w[step] for w in arrays.step_weights]
        want = run_layers(mlp_layers(before, kinds), kinds, rows)
        assert_stats(arrays.step_activation_stats[step], want, f"step {step}")
    # the run's start: the probe, before the first step; at step points each step's
    # batch tells what the network does after it, so the epoch's end is not probed
    assert start_stats is not None and arrays.end_activation_stats is None
    begin = run_layers(mlp_layers([w[0] for w in arrays.step_weights], kinds), kinds, probe)
    assert_stats(start_stats, begin, "start")
    # ... which is what capturing every epoch reports too, and it probes each epoch's end
    epoch_key = trainer_key(architecture, spec.training, step_capture=False, raw=False)
    per_epoch = CompiledTrainer(epoch_key, jit=False)
    per_epoch.reset(spec.model.initializer, seed=spec.seed, learning_rate=1e-2)
    by_epoch_start = per_epoch.probe_now(probe)
    by_epoch = per_epoch.train_epoch(x, y, probe, batch_size=16)
    np.testing.assert_array_equal(by_epoch_start, start_stats)
    np.testing.assert_array_equal(by_epoch.step_loss, arrays.step_loss)
    assert by_epoch.end_activation_stats is not None
    end = run_layers(mlp_layers(per_epoch.weights(), kinds), kinds, probe)
    assert_stats(by_epoch.end_activation_stats, end, "end")


def numpy_simple_rnn(
    kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, steps = x.shape[:2]
        h = np.zeros((n, recurrent.shape[0]))
        zs, hs = [], []
        for t in range(steps):
            z = x[:, t] @ kernel + bias + h @ recurrent
            h = np.tanh(z)
            zs.append(z)
            hs.append(h)
        return np.stack(zs, axis=1), np.stack(hs, axis=1)

    return run


def keras_layer(make: Any, input_shape: tuple[int, ...], weights: list[np.ndarray]) -> Layer:
    """A Keras layer with no activation of its own, run on `weights`: (its output, relu)."""
    layer = make()
    layer.build((None, *input_shape))
    layer.set_weights(weights)

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.asarray(layer(x.astype(np.float32)), np.float64)
        return z, np.maximum(z, 0)

    return run


def keras_lstm(input_shape: tuple[int, ...], weights: list[np.ndarray]) -> Layer:
    layer = keras.layers.LSTM(4, return_sequences=True)
    layer.build((None, *input_shape))
    layer.set_weights(weights)

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.asarray(layer(x.astype(np.float32)), np.float64)
        return h, h  # an LSTM's state is judged by its mean and S.D. alone

    return run


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
def test_a_layer_lists_step_points_are_its_training_batches(cell: str) -> None:
    spec = ExperimentSpec.model_validate(
        {
            "seed": 4,
            "dataset": {"kind": "recall", "sequence_length": 8, "n_samples": 60, "classes": 3},
            "model": {
                "layers": [
                    {
                        "class_name": "Conv1D",
                        "config": {"filters": 3, "kernel_size": 3, "activation": "relu"},
                    },
                    {"class_name": cell, "config": {"units": 4, "return_sequences": True}},
                    {"class_name": "Flatten"},
                ]
            },
            "training": {"batch_size": 16},
        }
    )
    from core.engine.run import _load

    data = _load(spec)
    x, y = data.x_train, data.y_train
    assert len(x) % 16, "the last batch is padded and masked"
    trainer, arrays, _ = train_one_epoch(spec, LayeredArchitecture.from_spec(spec), x, y, x[:20])
    named = {"SimpleRNN": "simple_rnn_2", "LSTM": "lstm_2"}[cell]
    assert trainer.network.probe_names == ["conv1d_1", named]
    kinds = ["relu", "tanh" if cell == "SimpleRNN" else "linear"]
    assert arrays.step_weights is not None and arrays.step_activation_stats is not None
    steps, features = x.shape[1:]
    for step, rows in enumerate(batches(x, 16)):
        w = [v[step] for v in arrays.step_weights]
        conv = keras_layer(lambda: keras.layers.Conv1D(3, 3), (steps, features), w[:2])
        recurrent = (
            numpy_simple_rnn(*(v.astype(np.float64) for v in w[2:5]))
            if cell == "SimpleRNN"
            else keras_lstm((steps - 2, 3), w[2:5])
        )
        want = run_layers([conv, recurrent], kinds, rows)
        assert_stats(arrays.step_activation_stats[step], want, f"step {step}")
