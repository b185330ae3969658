"""The tutorial experiment four ways, side by side in one process.

    python benchmarks/tutorial.py [--epochs 100] [--activation sigmoid]

(a) the tutorial's manual loop: eager GradientTape, one step at a time, the
    kernels read after every epoch and the gradients kept at each epoch's
    first step;
(b) Keras `fit` with a callback that reads the kernels after every epoch;
(c) the engine capturing every epoch (every layer's weight, gradient and
    update statistics at every step, activations once an epoch);
(d) the engine capturing every step (activations probed at every step too).

Each of (c) and (d) is timed cold (the first run of its shape in a fresh
process, as `gradwatch run` does it: the plain graph, traced, no XLA) and warm
(as a worker's later jobs of a shape: on the XLA graph its first one compiled).
All four train the same model on the same data; the printed accuracies show
they learn alike.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from core.datasets.builtin import load_dataset
from core.engine import graph_cache
from core.engine.run import run_experiment
from core.experiment.spec import ExperimentSpec

SEED = 1


def tutorial_model(activation: str) -> keras.Sequential:
    init = keras.initializers.RandomNormal(mean=0.0, stddev=1.0, seed=SEED)
    layers: list[keras.Layer] = [keras.Input((2,))]
    layers += [
        keras.layers.Dense(5, activation=activation, kernel_initializer=init) for _ in range(5)
    ]
    layers += [keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init)]
    return keras.Sequential(layers)


def manual_loop(x: np.ndarray, y: np.ndarray, epochs: int, activation: str) -> float:
    """(a) The tutorial's own loop, eager, capturing as it does."""
    model = tutorial_model(activation)
    optimizer = keras.optimizers.RMSprop()
    loss_fn = keras.losses.BinaryCrossentropy()
    weights = [[layer.kernel.numpy() for layer in model.layers]]
    gradients, losses = [], []
    rng = np.random.default_rng(SEED)
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for step, start in enumerate(range(0, len(y), 32)):
            batch = order[start : start + 32]
            with tf.GradientTape() as tape:
                loss = loss_fn(y[batch, None], model(x[batch], training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply(grads, model.trainable_weights)
            if step == 0:
                gradients.append([g.numpy() for g in grads[::2]])
                losses.append(float(loss))
        weights.append([layer.kernel.numpy() for layer in model.layers])
    return float(np.mean((model.predict(x, verbose=0)[:, 0] > 0.5) == y))


class KernelCapture(keras.callbacks.Callback):
    """The tutorial's `fit` callback: every layer's kernel after every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.kernels: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.kernels.append([layer.kernel.numpy() for layer in self.model.layers])


def keras_fit(x: np.ndarray, y: np.ndarray, epochs: int, activation: str) -> float:
    """(b) `model.fit` with a per-epoch weight callback."""
    model = tutorial_model(activation)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[KernelCapture()])
    return float(model.evaluate(x, y, verbose=0)[1])


def engine(every: str, epochs: int, activation: str) -> Callable[[], float]:
    spec = ExperimentSpec.model_validate(
        {
            "seed": SEED,
            "model": {"activation": activation},
            "training": {"epochs": epochs},
            "capture": {"every": every},
        }
    )

    def run() -> float:
        return float(run_experiment(spec).result["metrics"]["after"]["accuracy"])

    return run


def timed(run: Callable[[], float]) -> tuple[float, float]:
    started = time.perf_counter()
    accuracy = run()
    return time.perf_counter() - started, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--activation", default="sigmoid")
    args = parser.parse_args()
    data = load_dataset(ExperimentSpec().dataset, seed=SEED)
    x, y = data.x_train, data.y_train
    epochs, activation = args.epochs, args.activation

    rows: dict[str, tuple[float, float]] = {}
    rows["(a) manual GradientTape loop"] = timed(lambda: manual_loop(x, y, epochs, activation))
    rows["(b) Keras fit + weight callback"] = timed(lambda: keras_fit(x, y, epochs, activation))
    for every, label in (("epoch", "(c)"), ("step", "(d)")):
        run = engine(every, epochs, activation)
        graph_cache.set_xla_mode("auto")  # gradwatch run
        rows[f"{label} engine, every {every}, cold"] = timed(run)
        graph_cache.set_xla_mode("always")  # a worker
        run()  # the shape's first job compiles XLA
        rows[f"{label} engine, every {every}, warm"] = timed(run)

    print(f"\ntutorial: circles, 2-5-5-5-5-1 {activation}, N(0,1), RMSprop, {epochs} epochs")
    print(f"{'':40} {'seconds':>8} {'accuracy':>9}")
    for label, (seconds, accuracy) in rows.items():
        print(f"{label:40} {seconds:8.2f} {accuracy:9.3f}")
    a, b = rows["(a) manual GradientTape loop"][0], rows["(b) Keras fit + weight callback"][0]
    print()
    for temperature in ("cold", "warm"):
        c = rows[f"(c) engine, every epoch, {temperature}"][0]
        d = rows[f"(d) engine, every step, {temperature}"][0]
        print(
            f"{temperature}: (c) is {a / c:5.1f}x faster than (a), {b / c:4.1f}x faster than (b);"
            f" (d) takes {d / c:4.2f}x (c)"
        )


if __name__ == "__main__":
    main()
