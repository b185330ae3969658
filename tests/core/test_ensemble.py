"""Runs trained side by side in one graph: each member computes what it would alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from core.datasets.builtin import load_dataset
from core.engine.ensemble import EnsembleTrainer
from core.engine.graph_cache import trainer_key
from core.engine.network import Architecture
from core.engine.run import RunOutput, run_ensemble, run_experiment
from core.engine.trainer import CompiledTrainer, EpochArrays
from core.experiment.hooks import TrainingCancelled, TrainingHook
from core.experiment.spec import ExperimentSpec

N01 = {"kind": "random_normal", "mean": 0.0, "stddev": 1.0}
COMPARED = ("step_stats", "step_loss", "step_accuracy", "end_weight_stats")
COMPARED += ("end_activation_stats",)
MOMENTS = {"step_stats", "end_weight_stats"}  # of each tensor: mean, S.D., norm, max |value|


def specs_of(
    model: dict[str, Any],
    initializers: list[dict[str, Any]],
    activations: list[Any] | None = None,
    **training: Any,
) -> list[ExperimentSpec]:
    """Runs of `model` from each of `initializers`, each with its own of `activations`
    where they are given."""
    own = [{} if activations is None else {"activation": a} for a in activations or initializers]
    return [
        ExperimentSpec.model_validate(
            {
                "seed": seed,
                "dataset": {"kind": "moons", "n_samples": 120, "noise": 0.2},
                "model": {"hidden_layers": [6, 6, 4], **model, **mine, "initializer": initializer},
                "training": {"batch_size": 32, **training},
            }
        )
        for seed, (initializer, mine) in enumerate(zip(initializers, own, strict=True), start=3)
    ]


def train_both(
    specs: list[ExperimentSpec], *, epochs: int = 3, jit: bool = False, step_capture: bool = False
) -> tuple[list[list[EpochArrays]], list[list[EpochArrays]]]:
    """Per epoch, the ensemble's arrays of each member and each run's arrays alone."""
    data = [load_dataset(spec.dataset, seed=spec.seed) for spec in specs]
    keys = [
        trainer_key(
            Architecture.from_spec(spec.model, n_features=2, n_outputs=1),
            spec.training,
            step_capture=step_capture,
            raw=False,
        )
        for spec in specs
    ]
    activations = tuple(key.architecture.activations for key in keys)
    shared = keys[0]
    if len(set(activations)) > 1:  # each member applies its own
        shared = replace(shared, member_activations=activations)
    ensemble = EnsembleTrainer(shared, len(specs), jit=jit)
    rate = 1e-3 if specs[0].training.optimizer.kind == "rmsprop" else 1e-2
    ensemble.reset(
        [spec.model.initializer for spec in specs],
        seeds=[spec.seed for spec in specs],
        learning_rate=rate,
    )
    alone = []
    for spec, key in zip(specs, keys, strict=True):
        trainer = CompiledTrainer(key, jit=jit)
        trainer.reset(spec.model.initializer, seed=spec.seed, learning_rate=rate)
        alone.append(trainer)
    probe = np.stack([d.x_train[:50] for d in data])
    # a run's start, probed op by op: each member's is its run's alone
    together_start = ensemble.probe_now(probe)
    assert together_start is not None
    for m, trainer in enumerate(alone):
        assert_close(together_start[m], trainer.probe_now(probe[m]), "start activations")
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


def assert_close(
    together: np.ndarray, alone: np.ndarray, what: str, *, moments: bool = False
) -> None:
    """Equal to float32 rounding: relative to each statistic's own scale in the run. With
    `moments` (the last axis holds mean, S.D., norm and max |value| of each tensor, then
    maybe a ratio), a mean's also to the size of the values it averages: a mean near
    zero of values that are not keeps their rounding."""
    assert together.shape == alone.shape, what
    finite = np.isfinite(alone)
    np.testing.assert_array_equal(np.isfinite(together), finite, err_msg=what)
    alone = np.where(finite, alone, 0.0)
    scale = np.max(np.abs(alone), axis=0, keepdims=True)
    averaged = np.zeros_like(alone)
    if moments:
        for mean in range(0, alone.shape[-1] - 1, 4):
            averaged[..., mean] = np.abs(alone[..., mean + 3])
    error = np.abs(np.where(finite, together, 0.0) - alone)
    assert np.all(error <= 1e-4 * np.abs(alone) + 1e-5 * np.maximum(scale, averaged)), what


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
                assert_close(
                    getattr(mine, name), getattr(single, name), what, moments=name in MOMENTS
                )
            for g, h in zip(mine.first_gradients, single.first_gradients, strict=True):
                scale = float(np.max(np.abs(h)))
                np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize(("jit", "step_capture"), [(False, False), (False, True), (True, False)])
def test_members_of_other_activations_each_compute_what_they_would_alone(
    jit: bool, step_capture: bool
) -> None:
    # One kind's members apart (sigmoid), and a member whose layers differ in kind: each
    # member's activations, and the statistics that depend on their kind (saturated,
    # dead, negative), are its own.
    activations = ["sigmoid", "relu", "sigmoid", ["tanh", "elu", "softsign"]]
    specs = specs_of({}, [N01] * 4, activations, optimizer={"kind": "adam"})
    together_epochs, alone_epochs = train_both(specs, epochs=2, jit=jit, step_capture=step_capture)
    probes = ["step_activation_stats"] if step_capture else ["end_activation_stats"]
    for epoch, (together, alone) in enumerate(zip(together_epochs, alone_epochs, strict=True)):
        for member, (mine, single) in enumerate(zip(together, alone, strict=True)):
            for name in ["step_stats", "step_loss", "end_weight_stats", *probes]:
                what = f"epoch {epoch}, member {member}, {name}"
                assert_close(
                    getattr(mine, name), getattr(single, name), what, moments=name in MOMENTS
                )


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
                "kernel statistics", moments=True,
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


@pytest.mark.parametrize("step_capture", [False, True])
def test_xla_members_agree_with_runs_alone(step_capture: bool) -> None:
    specs = specs_of({"activation": "tanh"}, [N01, N01])
    together_epochs, alone_epochs = train_both(specs, epochs=2, jit=True, step_capture=step_capture)
    # capturing every step, each step's batch is probed and the epoch's end is not
    probes = ["step_activation_stats"] if step_capture else ["end_activation_stats"]
    for together, alone in zip(together_epochs, alone_epochs, strict=True):
        for mine, single in zip(together, alone, strict=True):
            for name in ["step_stats", *probes]:
                assert_close(
                    getattr(mine, name), getattr(single, name), f"{name} under XLA",
                    moments=name in MOMENTS,
                )  # fmt: skip


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
        predicted = ensemble.predict(np.stack([grid, 2 * grid]))[member]
        np.testing.assert_allclose(predicted, alone.predict((1 + member) * grid), rtol=1e-5)
        for mine, single in zip(ensemble.weights()[member], alone.weights(), strict=True):
            np.testing.assert_array_equal(mine, single)


@pytest.mark.parametrize("training", [{"clipnorm": 1.0}])
def test_runs_clipped_by_norm_are_refused(training: dict[str, Any]) -> None:
    spec = specs_of({"activation": "tanh"}, [N01], **training)[0]
    architecture = Architecture.from_spec(spec.model, n_features=2, n_outputs=1)
    key = trainer_key(architecture, spec.training, step_capture=False, raw=False)
    with pytest.raises(ValueError, match="norm"):
        EnsembleTrainer(key, 2, jit=False)


# --------------------------------------------------------------------- the engine


def assert_results_close(together: Any, alone: Any, path: str = "result") -> None:
    """Two result documents alike but for their timing, numbers to float32 rounding."""
    if isinstance(alone, dict):
        assert set(together) == set(alone), path
        for name in alone:
            if name != "timing":
                assert_results_close(together[name], alone[name], f"{path}.{name}")
    elif isinstance(alone, list):
        assert len(together) == len(alone), path
        numbers = [v for v in alone if isinstance(v, float)]
        if numbers and len(numbers) == len([v for v in alone if v is not None]):
            scale = max(abs(v) for v in numbers)
            for a, b in zip(together, alone, strict=True):
                assert (a is None) == (b is None), path
                if b is not None:
                    # A mean near zero of weights near one keeps their rounding: the
                    # absolute floor, as for a single number below.
                    assert abs(a - b) <= 1e-4 * abs(b) + 1e-5 * scale + 1e-6, path
        else:
            for index, (a, b) in enumerate(zip(together, alone, strict=True)):
                assert_results_close(a, b, f"{path}[{index}]")
    elif isinstance(alone, float):
        assert abs(together - alone) <= 1e-4 * abs(alone) + 1e-6, path
    else:
        assert together == alone, path


class Recording(TrainingHook):
    def __init__(self, cancel_at: int | None = None) -> None:
        self.epochs: list[int] = []
        self.ended = False
        self.cancel_at = cancel_at

    def on_epoch_end(self, epoch: int, epochs: int, logs: Any) -> None:
        self.epochs.append(epoch)
        if epoch == self.cancel_at:
            raise TrainingCancelled

    def on_train_end(self, logs: Any) -> None:
        self.ended = True


def engine_specs(
    activations: tuple[str, ...] = ("tanh",) * 3, **capture: Any
) -> list[ExperimentSpec]:
    initializers = [N01, {"kind": "glorot_uniform"}, N01]
    return [
        ExperimentSpec.model_validate(
            {
                "seed": seed,
                "dataset": {"kind": "circles", "n_samples": 200, "validation_split": 0.2},
                "model": {"activation": activation, "initializer": initializer},
                "training": {"epochs": 4},
                "capture": {"histogram_snapshots": 3, **capture},
            }
        )
        for seed, initializer, activation in zip((5, 6, 7), initializers, activations, strict=True)
    ]


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_members_results_are_the_runs_results(every: str) -> None:
    specs = engine_specs(every=every)
    outputs = run_ensemble(specs, [[] for _ in specs])
    for spec, output in zip(specs, outputs, strict=True):
        assert isinstance(output, RunOutput)
        assert output.result["timing"]["members"] == len(specs)
        assert_results_close(output.result, run_experiment(spec).result)


def test_members_of_other_activations_are_each_recorded_as_their_own_run() -> None:
    # Each member's result names its own layers' activations, and its diagnosis is its own.
    specs = engine_specs(activations=("relu", "sigmoid", "relu"))
    outputs = run_ensemble(specs, [[] for _ in specs])
    for spec, output in zip(specs, outputs, strict=True):
        assert isinstance(output, RunOutput)
        assert_results_close(output.result, run_experiment(spec).result)


def test_a_cancelled_member_stops_and_the_others_go_on() -> None:
    specs = engine_specs()
    hooks = [Recording(), Recording(cancel_at=2), Recording()]
    outputs = run_ensemble(specs, [[hook] for hook in hooks])
    assert isinstance(outputs[1], TrainingCancelled)
    assert hooks[1].epochs == [1, 2] and not hooks[1].ended
    for member in (0, 2):
        assert hooks[member].epochs == [1, 2, 3, 4] and hooks[member].ended
        output = outputs[member]
        assert isinstance(output, RunOutput)
        assert_results_close(output.result, run_experiment(specs[member]).result)


def test_a_member_that_blows_up_stops_alone() -> None:
    base = {
        "model": {"activation": "relu", "hidden_layers": [8] * 10},
        "training": {"optimizer": {"kind": "sgd", "learning_rate": 0.1}, "epochs": 5},
    }
    calm = {"kind": "he_normal"}
    wild = {"kind": "random_normal", "stddev": 10.0}
    specs = [
        ExperimentSpec.model_validate(
            {**base, "seed": seed, "model": {**base["model"], "initializer": init}}
        )
        for seed, init in ((1, calm), (2, wild), (3, calm))
    ]
    outputs = run_ensemble(specs[:2], [[], []])
    kept, blown = (output.result for output in outputs if isinstance(output, RunOutput))
    assert blown["diverged"] and blown["epochs_run"] < 5
    assert not kept["diverged"] and kept["epochs_run"] == 5
    # The same run beside a calm mate: not a number changed by the other's NaNs.
    beside_calm = run_ensemble([specs[0], specs[2]], [[], []])[0]
    assert isinstance(beside_calm, RunOutput)
    assert kept["series"] == beside_calm.result["series"]
    assert kept["histograms"] == beside_calm.result["histograms"]


def test_runs_that_do_not_share_a_graph_are_refused() -> None:
    specs = [ExperimentSpec.model_validate({"seed": 1}), ExperimentSpec.model_validate(
        {"seed": 2, "model": {"hidden_layers": [5, 5, 5], "activation": "tanh"}}
    )]  # fmt: skip
    with pytest.raises(ValueError, match="share a graph"):
        run_ensemble(specs, [[], []])
