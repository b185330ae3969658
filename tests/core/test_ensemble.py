"""Runs trained side by side in one graph: each member computes what it would alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.datasets import load_dataset
from core.ensemble import EnsembleTrainer
from core.graph_cache import trainer_key
from core.network import Architecture
from core.spec import ExperimentSpec
from core.trainer import CompiledTrainer, EpochArrays

N01 = {"kind": "random_normal", "mean": 0.0, "stddev": 1.0}
COMPARED = ("step_stats", "step_loss", "step_accuracy", "end_weight_stats")
COMPARED += ("start_activation_stats", "end_activation_stats")


def specs_of(
    model: dict[str, Any], initializers: list[dict[str, Any]], **training: Any
) -> list[ExperimentSpec]:
    return [
        ExperimentSpec.model_validate(
            {
                "seed": seed,
                "dataset": {"kind": "moons", "n_samples": 120, "noise": 0.2},
                "model": {"hidden_layers": [6, 6, 4], **model, "initializer": initializer},
                "training": {"batch_size": 32, **training},
            }
        )
        for seed, initializer in enumerate(initializers, start=3)
    ]


def train_both(
    specs: list[ExperimentSpec], *, epochs: int = 3, jit: bool = False
) -> tuple[list[list[EpochArrays]], list[list[EpochArrays]]]:
    """Per epoch, the ensemble's arrays of each member and each run's arrays alone."""
    data = [load_dataset(spec.dataset, seed=spec.seed) for spec in specs]
    architecture = Architecture.from_spec(specs[0].model, n_features=2, n_outputs=1)
    key = trainer_key(architecture, specs[0].training, step_capture=False, raw=False)
    ensemble = EnsembleTrainer(key, len(specs), jit=jit)
    rate = 1e-3 if specs[0].training.optimizer.kind == "rmsprop" else 1e-2
    ensemble.reset(
        [spec.model.initializer for spec in specs],
        seeds=[spec.seed for spec in specs],
        learning_rate=rate,
    )
    alone = []
    for spec in specs:
        trainer = CompiledTrainer(key, jit=jit)
        trainer.reset(spec.model.initializer, seed=spec.seed, learning_rate=rate)
        alone.append(trainer)
    probe = np.stack([d.x_train[:50] for d in data])
    together_epochs, alone_epochs = [], []
    for epoch in range(epochs):
        orders = [
            np.random.default_rng(100 * epoch + i).permutation(120) for i in range(len(specs))
        ]
        x = np.stack([d.x_train[order] for d, order in zip(data, orders, strict=True)])
        y = np.stack([d.y_train[order] for d, order in zip(data, orders, strict=True)])
        together_epochs.append(ensemble.train_epoch(x, y, probe, batch_size=32))
        alone_epochs.append(
            [t.train_epoch(x[m], y[m], probe[m], batch_size=32) for m, t in enumerate(alone)]
        )
    return together_epochs, alone_epochs


def assert_close(together: np.ndarray, alone: np.ndarray, what: str) -> None:
    """Equal to float32 rounding: relative to each statistic's own scale in the run."""
    assert together.shape == alone.shape, what
    finite = np.isfinite(alone)
    np.testing.assert_array_equal(np.isfinite(together), finite, err_msg=what)
    scale = np.max(np.abs(np.where(finite, alone, 0.0)), axis=0, keepdims=True)
    error = np.abs(np.where(finite, together - alone, 0.0))
    assert np.all(error <= 1e-4 * np.abs(np.where(finite, alone, 0.0)) + 1e-5 * scale), what


@pytest.mark.parametrize(
    ("model", "initializers", "optimizer"),
    [
        ({"activation": "sigmoid"}, [N01, N01, N01], {"kind": "rmsprop"}),
        ({"activation": "relu"}, [N01, {"kind": "glorot_uniform"}, {"kind": "he_normal"}],
         {"kind": "adam"}),
        ({"activation": ["tanh", "tanh", "elu"], "residual": True}, [N01, N01],
         {"kind": "sgd", "momentum": 0.9}),
    ],
)  # fmt: skip
def test_each_member_computes_what_it_would_alone(
    model: dict[str, Any], initializers: list[dict[str, Any]], optimizer: dict[str, Any]
) -> None:
    specs = specs_of(model, initializers, optimizer=optimizer)
    together_epochs, alone_epochs = train_both(specs)
    for epoch, (together, alone) in enumerate(zip(together_epochs, alone_epochs, strict=True)):
        for member, (mine, single) in enumerate(zip(together, alone, strict=True)):
            for name in COMPARED:
                what = f"epoch {epoch}, member {member}, {name}"
                assert_close(getattr(mine, name), getattr(single, name), what)
            for g, h in zip(mine.first_gradients, single.first_gradients, strict=True):
                scale = float(np.max(np.abs(h)))
                np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-5 * scale)


def test_batch_norm_members_agree_but_for_the_biases_it_cancels() -> None:
    # A dense bias right before batch norm is cancelled by the normalisation: its
    # true gradient is zero and what the graph computes is rounding noise, which
    # adaptive optimizers then scale up. Everything else agrees.
    specs = specs_of({"activation": "tanh", "batch_norm": True}, [N01, N01, N01])
    together_epochs, alone_epochs = train_both(specs)
    kernels_and_output = [0, 2, 4, 6, 7]  # hidden kernels, then the output kernel and bias
    for together, alone in zip(together_epochs, alone_epochs, strict=True):
        for mine, single in zip(together, alone, strict=True):
            assert_close(mine.step_loss, single.step_loss, "loss")
            assert_close(
                mine.step_stats[:, kernels_and_output], single.step_stats[:, kernels_and_output],
                "kernel statistics",
            )  # fmt: skip
            assert_close(mine.end_activation_stats, single.end_activation_stats, "activations")


def test_a_members_numbers_do_not_depend_on_its_mates() -> None:
    first = specs_of({"activation": "sigmoid"}, [N01, N01])
    other = specs_of({"activation": "sigmoid"}, [N01, {"kind": "glorot_normal"}])
    with_first, _ = train_both(first, epochs=2)
    with_other, _ = train_both(other, epochs=2)
    for a, b in zip(with_first, with_other, strict=True):
        np.testing.assert_array_equal(a[0].step_stats, b[0].step_stats)
        np.testing.assert_array_equal(a[0].end_activation_stats, b[0].end_activation_stats)


def test_xla_members_agree_with_runs_alone() -> None:
    specs = specs_of({"activation": "tanh"}, [N01, N01])
    together_epochs, alone_epochs = train_both(specs, epochs=2, jit=True)
    for together, alone in zip(together_epochs, alone_epochs, strict=True):
        for mine, single in zip(together, alone, strict=True):
            assert_close(mine.step_stats, single.step_stats, "statistics under XLA")


def test_evaluate_and_predict_give_each_members_numbers() -> None:
    specs = specs_of({"activation": "relu"}, [N01, {"kind": "he_uniform"}])
    data = [load_dataset(spec.dataset, seed=spec.seed) for spec in specs]
    architecture = Architecture.from_spec(specs[0].model, n_features=2, n_outputs=1)
    key = trainer_key(architecture, specs[0].training, step_capture=False, raw=False)
    ensemble = EnsembleTrainer(key, 2, jit=False)
    ensemble.reset([s.model.initializer for s in specs], seeds=[3, 4], learning_rate=1e-3)
    x = np.stack([d.x_train for d in data])
    y = np.stack([d.y_train for d in data])
    grid = np.linspace(-1, 1, 20, dtype=np.float32).reshape(10, 2)
    for member, spec in enumerate(specs):
        alone = CompiledTrainer(key, jit=False)
        alone.reset(spec.model.initializer, seed=spec.seed, learning_rate=1e-3)
        np.testing.assert_allclose(
            ensemble.evaluate(x, y)[member], alone.evaluate(x[member], y[member]), rtol=1e-5
        )
        np.testing.assert_allclose(ensemble.predict(grid)[member], alone.predict(grid), rtol=1e-5)
        for mine, single in zip(ensemble.weights()[member], alone.weights(), strict=True):
            np.testing.assert_array_equal(mine, single)


@pytest.mark.parametrize("training", [{"clipnorm": 1.0}])
def test_runs_clipped_by_norm_are_refused(training: dict[str, Any]) -> None:
    spec = specs_of({"activation": "tanh"}, [N01], **training)[0]
    architecture = Architecture.from_spec(spec.model, n_features=2, n_outputs=1)
    key = trainer_key(architecture, spec.training, step_capture=False, raw=False)
    with pytest.raises(ValueError, match="norm"):
        EnsembleTrainer(key, 2, jit=False)
