"""The training engine's entry point: one spec in, the result and raw arrays out.

`run_experiment` is what `gradwatch run` and the worker call. It imports
TensorFlow (through core.engine.trainer), so import this module only where training
runs, never in a process that forks workers.

Example:
    >>> from core.experiment.spec import ExperimentSpec
    >>> output = run_experiment(ExperimentSpec(training={"epochs": 3}))
    >>> output.result["diagnosis"]["verdicts"]
    ['vanishing']
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import tensorflow as tf

from core.datasets.builtin import Dataset, load_dataset
from core.engine.ensemble import EnsembleTrainer
from core.engine.graph_cache import (
    BOUNDARY_RESOLUTION,
    Shapes,
    checkout,
    checkout_ensemble,
    trainer_key,
)
from core.engine.hardware import cpu_name
from core.engine.layered import (
    LayeredArchitecture,
    LayeredNetwork,
    layer_entries,
    output_activation,
)
from core.engine.network import Architecture, Network
from core.engine.optimizer import default_learning_rate
from core.engine.recorder import Recorder, snapshot_epochs
from core.engine.trainer import CompiledTrainer, EpochArrays, TrainerKey
from core.experiment.diagnosis import diagnose
from core.experiment.grouping import graph_signature, group_signature
from core.experiment.hooks import TrainingCancelled, TrainingHook
from core.experiment.prescriptions import advise
from core.experiment.result import RESULT_VERSION, finite_list, finite_or_none
from core.experiment.sizing import steps_per_epoch
from core.experiment.spec import CaptureEvery, ExperimentSpec, output_units, sample_shape

DATASET_POINTS = 2000  # points kept in the result for the dataset plot


@dataclass(frozen=True)
class RunOutput:
    """A finished run: `result` is result.json's content, `arrays` arrays.npz's bytes."""

    result: dict[str, Any]
    arrays: bytes | None


def run_experiment(spec: ExperimentSpec, hooks: Sequence[TrainingHook] = ()) -> RunOutput:
    """Train the spec's network while capturing every layer, then diagnose it.

    Raises `core.experiment.hooks.TrainingCancelled` when a hook does.
    """
    started = time.perf_counter()
    data = _load(spec)
    plan = _Plan.of(spec, data)
    with checkout(
        plan.key,
        plan.shapes,
        steps=plan.steps,
        graph=spec.training.graph,
        signature=graph_signature(spec),
    ) as (trainer, reused):
        trainer.reset(spec.model.initializer, seed=spec.seed, learning_rate=plan.learning_rate)
        run = _Run(spec, data, plan.key.architecture, trainer.network)
        run.start_activations(trainer.probe_now(run.probe))
        for hook in hooks:
            hook.on_train_begin(spec.training.epochs)
        epochs = spec.training.epochs
        between = functools.partial(_between_calls, hooks, 0, epochs)
        if data.has_validation:
            run.start_validation(trainer.evaluate(data.x_val, data.y_val, between))
        for epoch in range(1, epochs + 1):
            between = functools.partial(_between_calls, hooks, epoch, epochs)
            order = run.epoch_order()
            start_weights = trainer.weights() if run.keeps_start(epoch) else None
            arrays = trainer.train_epoch(
                data.x_train[order],
                data.y_train[order],
                run.probe,
                batch_size=plan.batch_size,
                between=between,
            )
            validation = (
                trainer.evaluate(data.x_val, data.y_val, between) if data.has_validation else None
            )
            logs = run.record_epoch(epoch, arrays, start_weights, validation)
            for hook in hooks:
                hook.on_epoch_end(epoch, epochs, logs)
            if run.diverged_at is not None:
                break
        run.end(trainer.weights() if run.keeps_end else None)
        result = run.result(
            train=trainer.evaluate(data.x_train, data.y_train, between),
            validation=(
                trainer.evaluate(data.x_val, data.y_val, between) if data.has_validation else None
            ),
            boundary=trainer.predict(run.grid, between) if run.grid is not None else None,
            seconds=time.perf_counter() - started,
            timing=_timing(trainer, reused=reused, members=1),
        )
    for hook in hooks:
        hook.on_train_end(result["metrics"]["after"])
    return RunOutput(result=result, arrays=run.arrays())


def run_ensemble(
    specs: Sequence[ExperimentSpec], hooks: Sequence[Sequence[TrainingHook]]
) -> list[RunOutput | TrainingCancelled]:
    """Train runs that share a graph (`core.experiment.grouping`) side by side in one.

    Each member is recorded, diagnosed and hooked exactly as `run_experiment`
    would do it alone, and its numbers equal that run's to float32 rounding. A
    member whose hook raises `TrainingCancelled` stops there (its place holds the
    exception), one whose loss stops being finite stops as a run alone would;
    the others go on.
    """
    started = time.perf_counter()
    data = [_load(spec) for spec in specs]
    plans = [_Plan.of(spec, d) for spec, d in zip(specs, data, strict=True)]
    plan = _Plan.shared(plans)
    members, epochs = len(specs), specs[0].training.epochs
    outcomes: list[RunOutput | TrainingCancelled | None] = [None] * members
    with checkout_ensemble(
        plan.key,
        plan.shapes,
        steps=plan.steps,
        members=members,
        graph=specs[0].training.graph,
        signature=group_signature(specs),
    ) as (trainer, reused):
        trainer.reset(
            [spec.model.initializer for spec in specs],
            seeds=[spec.seed for spec in specs],
            learning_rate=plan.learning_rate,
        )
        runs = [
            _Run(spec, d, own.key.architecture)
            for spec, d, own in zip(specs, data, plans, strict=True)
        ]
        initial = trainer.probe_now(np.stack([run.probe for run in runs]))
        for m, run in enumerate(runs):
            run.start_activations(None if initial is None else initial[m])
        for member_hooks in hooks:
            for hook in member_hooks:
                hook.on_train_begin(epochs)
        x_val, y_val = np.stack([d.x_val for d in data]), np.stack([d.y_val for d in data])
        has_validation = data[0].has_validation
        active = list(range(members))
        between = _MembersBetweenCalls(hooks, active, outcomes, epochs)
        if has_validation:
            for run, metrics in zip(runs, trainer.evaluate(x_val, y_val, between), strict=True):
                run.start_validation(metrics)
        for epoch in range(1, epochs + 1):
            between.epoch = epoch
            orders = [run.epoch_order() for run in runs]
            weights = trainer.weights() if any(runs[m].keeps_start(epoch) for m in active) else None
            try:
                per_member = trainer.train_epoch(
                    np.stack([d.x_train[o] for d, o in zip(data, orders, strict=True)]),
                    np.stack([d.y_train[o] for d, o in zip(data, orders, strict=True)]),
                    np.stack([run.probe for run in runs]),
                    batch_size=plan.batch_size,
                    between=between,
                )
                validation = trainer.evaluate(x_val, y_val, between) if has_validation else None
            except _EveryMemberCancelled:
                break
            for m in list(active):
                run = runs[m]
                start_weights = (
                    weights[m] if weights is not None and run.keeps_start(epoch) else None
                )
                logs = run.record_epoch(
                    epoch,
                    per_member[m],
                    start_weights,
                    None if validation is None else validation[m],
                )
                try:
                    for hook in hooks[m]:
                        hook.on_epoch_end(epoch, epochs, logs)
                except TrainingCancelled as cancelled:
                    outcomes[m] = cancelled
                    active.remove(m)
                    continue
                if run.diverged_at is not None:
                    active.remove(m)
                    run.end(trainer.weights()[m] if run.keeps_end else None)
            if not active:
                break
        final_weights = trainer.weights() if any(run.keeps_end for run in runs) else None
        between.ending = True
        try:
            train = trainer.evaluate(
                np.stack([d.x_train for d in data]), np.stack([d.y_train for d in data]), between
            )
            validation = trainer.evaluate(x_val, y_val, between) if has_validation else None
            grids = [grid for run in runs if (grid := run.grid) is not None]
            boundary = trainer.predict(np.stack(grids), between) if grids else None
        except _EveryMemberCancelled:
            pass
        seconds = time.perf_counter() - started
        for m, run in enumerate(runs):
            if outcomes[m] is not None:
                continue
            if run.diverged_at is None:
                run.end(final_weights[m] if final_weights is not None and run.keeps_end else None)
            result = run.result(
                train=train[m],
                validation=None if validation is None else validation[m],
                boundary=None if boundary is None else boundary[m],
                seconds=seconds,
                timing=_timing(trainer, reused=reused, members=members),
            )
            for hook in hooks[m]:
                hook.on_train_end(result["metrics"]["after"])
            outcomes[m] = RunOutput(result=result, arrays=run.arrays())
    finished = [outcome for outcome in outcomes if outcome is not None]
    assert len(finished) == members  # each was cancelled or trained to its end (or divergence)
    return finished


def _timing(
    trainer: CompiledTrainer | EnsembleTrainer, *, reused: bool, members: int
) -> dict[str, Any]:
    """What result.timing says of the graph that trained a run (beside its seconds)."""
    return {
        "graph": "xla" if trainer.jit else "plain",
        "graph_reused": reused,
        "members": members,
    }


def _between_calls(hooks: Sequence[TrainingHook], epoch: int, epochs: int) -> None:
    """Between two calls of a long epoch (core.engine.chunks): the hooks may stop the run."""
    for hook in hooks:
        hook.on_chunk_end(epoch, epochs)


class _EveryMemberCancelled(Exception):  # noqa: N818 - reads as the event it reports
    """No member of an ensemble is left to train (or, once `ending`, to evaluate)."""


class _MembersBetweenCalls:
    """Between two calls of an ensemble's long epoch or evaluation: each active member's
    hooks may cancel it (its outcome then holds the exception, and it leaves `active`).

    The others train on (they share the graph; a cancelled member's numbers are
    dropped). Once no member is active the epoch stops; once `ending` (the final
    evaluation), the evaluation stops when every member has an outcome (a diverged
    one, no longer active, still wants its final metrics).
    """

    def __init__(
        self,
        hooks: Sequence[Sequence[TrainingHook]],
        active: list[int],
        outcomes: list[RunOutput | TrainingCancelled | None],
        epochs: int,
    ) -> None:
        self.hooks, self.active, self.outcomes, self.epochs = hooks, active, outcomes, epochs
        self.epoch = 0
        self.ending = False

    def __call__(self) -> None:
        for m in list(self.active):
            try:
                for hook in self.hooks[m]:
                    hook.on_chunk_end(self.epoch, self.epochs)
            except TrainingCancelled as cancelled:
                self.outcomes[m] = cancelled
                self.active.remove(m)
        done = all(outcome is not None for outcome in self.outcomes)
        if done if self.ending else not self.active:
            raise _EveryMemberCancelled


def _load(spec: ExperimentSpec) -> Dataset:
    """The spec's data: in its own shape for a layer list, flattened for the MLP."""
    data = load_dataset(spec.dataset, seed=spec.seed)
    return data if spec.model.layers is not None else data.flattened()


@dataclass(frozen=True)
class _Plan:
    """What a run's compiled graph depends on, derived from its spec and data."""

    key: TrainerKey
    shapes: Shapes
    steps: int
    batch_size: int
    learning_rate: float

    @classmethod
    def of(cls, spec: ExperimentSpec, data: Dataset) -> _Plan:
        architecture: Architecture | LayeredArchitecture
        if spec.model.layers is not None:
            architecture = LayeredArchitecture.from_spec(spec)
        else:
            architecture = Architecture.from_spec(
                spec.model,
                n_features=data.n_features,
                n_outputs=output_units(spec.dataset),
                regression=data.regression,
            )
        capture = spec.capture
        key = trainer_key(
            architecture,
            spec.training,
            step_capture=capture.every is CaptureEvery.STEP,
            raw=capture.raw,
            activations=capture.activations,
        )
        shapes = Shapes(
            samples=len(data.y_train),
            features=data.n_features,
            batch_size=spec.training.batch_size,
            probe=min(capture.probe_size, len(data.y_train)) if capture.activations else 0,
            validation=len(data.y_val),
        )
        optimizer = spec.training.optimizer
        return cls(
            key=key,
            shapes=shapes,
            steps=spec.training.epochs * steps_per_epoch(spec),
            batch_size=spec.training.batch_size,
            learning_rate=optimizer.learning_rate or default_learning_rate(optimizer.kind),
        )

    @classmethod
    def shared(cls, plans: Sequence[_Plan]) -> _Plan:
        """The one plan of runs trained side by side: theirs, alike but maybe for their
        MLPs' hidden activations, which the graph then applies member by member (the
        key's `member_activations`); a ValueError for runs that do not share a graph."""
        first = plans[0]
        if all(plan == first for plan in plans[1:]):
            return first
        mlps = [a for plan in plans if isinstance(a := plan.key.architecture, Architecture)]

        def but_activations(plan: _Plan, mlp: Architecture) -> _Plan:
            without = replace(mlp, activations=())
            return replace(plan, key=replace(plan.key, architecture=without))

        if len(mlps) == len(plans):
            alike = [but_activations(plan, mlp) for plan, mlp in zip(plans, mlps, strict=True)]
            if all(plan == alike[0] for plan in alike[1:]):
                activations = tuple(mlp.activations for mlp in mlps)
                return replace(first, key=replace(first.key, member_activations=activations))
        raise ValueError("these runs do not share a graph: see core.experiment.grouping")


Metrics = tuple[float, float]  # loss, accuracy


class _Run:
    """One run's bookkeeping: its data order, recorder and metrics, fed epoch by epoch.

    It never calls a trainer: the driver (`run_experiment` for a run alone,
    `run_ensemble` for members of one graph) trains and hands it the numbers.
    """

    def __init__(
        self,
        spec: ExperimentSpec,
        data: Dataset,
        architecture: Architecture | LayeredArchitecture,
        network: Network | LayeredNetwork | None = None,
    ) -> None:
        self.spec, self.data, self.architecture = spec, data, architecture
        # One generator, drawn in a fixed order, makes the run repeatable; the
        # probe is drawn even when unused, so every switch trains the same numbers.
        self.rng = np.random.default_rng(spec.seed)
        probe_index = self.rng.permutation(len(data.y_train))[: spec.capture.probe_size]
        if not spec.capture.activations:
            probe_index = probe_index[:0]
        self.probe = data.x_train[np.sort(probe_index)]
        self.layer_names = architecture.layer_names
        parts = (
            network.variable_parts
            if network is not None
            else [(n, p) for n in self.layer_names for p in ("kernel", "bias")]
        )
        self.variable_names = [f"{n}/{p}" for n, p in parts]
        layered = network if isinstance(network, LayeredNetwork) else None
        recurrent = layered.recurrent_layers if layered else []
        self.recorder = Recorder(
            layer_names=self.layer_names,
            capture=spec.capture,
            epochs=spec.training.epochs,
            variable_parts=list(parts),
            probe_names=None if network is None else list(network.probe_names),
            through_time_layers=recurrent,
            channel_layers=layered.conv_layers if layered else [],
        )
        self.before: dict[str, dict[str, float | None]] = {}
        capture = spec.capture
        self.snapshots = (
            set(snapshot_epochs(spec.training.epochs, capture.histogram_snapshots))
            if capture.histograms and (capture.weights or capture.gradients)
            else set()
        )
        self.epoch_raw = capture.raw and capture.every is CaptureEvery.EPOCH
        self.diverged_at: int | None = None
        self._last: tuple[int, EpochArrays] | None = None

    def start_activations(self, stats: np.ndarray | None) -> None:
        """The untrained network's activation statistics on the probe (when probing)."""
        if stats is not None:
            self.recorder.initial_activation_stats = stats

    @property
    def keeps_end(self) -> bool:
        """Whether `end` wants the weights after the last step (the final snapshot)."""
        return bool(self.snapshots) and self.spec.capture.weights

    @functools.cached_property
    def _grid_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """The decision surface's x and y: the data's extent and a tenth more each side."""
        x = self.data.x_train
        low, high = x.min(axis=0), x.max(axis=0)
        margin = 0.1 * (high - low) + 1e-3
        return (
            np.linspace(low[0] - margin[0], high[0] + margin[0], BOUNDARY_RESOLUTION),
            np.linspace(low[1] - margin[1], high[1] + margin[1], BOUNDARY_RESOLUTION),
        )

    @property
    def grid(self) -> np.ndarray | None:
        """The points of the decision surface, for 2-D sets."""
        if self.data.n_features != 2:
            return None
        return np.stack(np.meshgrid(*self._grid_axes), axis=-1).reshape(-1, 2).astype(np.float32)

    def start_validation(self, metrics: Metrics) -> None:
        self.before["validation"] = _metrics(metrics)

    def epoch_order(self) -> np.ndarray:
        """The order of the next epoch's samples."""
        return self.rng.permutation(len(self.data.y_train))

    def keeps_start(self, epoch: int) -> bool:
        """Whether `record_epoch` wants the weights before epoch `epoch`'s first step."""
        return (epoch in self.snapshots or self.epoch_raw) and self.spec.capture.weights

    def record_epoch(
        self,
        epoch: int,
        arrays: EpochArrays,
        start_weights: list[np.ndarray] | None,
        validation: Metrics | None,
    ) -> dict[str, float | None]:
        """Record epoch `epoch`; its logs for the hooks."""
        capture = self.spec.capture
        logs = self.recorder.add_epoch(epoch, arrays)
        self._last = epoch, arrays
        if epoch == 1:
            self.before["train"] = _metrics((arrays.start_loss, arrays.start_accuracy))
        if epoch in self.snapshots or self.epoch_raw:
            gradients = (
                [np.asarray(g) for g in arrays.first_gradients] if capture.gradients else None
            )
            if epoch in self.snapshots:
                self.recorder.add_histograms(epoch, start_weights, gradients)
            if self.epoch_raw:
                self.recorder.add_raw(
                    self.variable_names,
                    None if start_weights is None else [w[None] for w in start_weights],
                    None if gradients is None else [g[None] for g in gradients],
                )
        if arrays.step_weights is not None and arrays.step_gradients is not None:
            self.recorder.add_raw(
                self.variable_names,
                arrays.step_weights if capture.weights else None,
                arrays.step_gradients if capture.gradients else None,
            )
        if validation is not None:
            val = _metrics(validation)
            self.recorder.add_validation(val)
            logs |= {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}
        if logs["loss"] is None:
            # Once the loss is not finite every later number is NaN too.
            self.diverged_at = epoch
        return logs

    def end(self, weights: list[np.ndarray] | None) -> None:
        """Training is over: the final histograms, of the trained network (or where a
        diverged run stopped): the weights after the last step run, and its gradient."""
        if not self.snapshots or self._last is None:
            return
        epoch, arrays = self._last
        gradients = arrays.last_gradients if self.spec.capture.gradients else None
        self.recorder.add_histograms(
            epoch,
            weights,
            None if gradients is None else [np.asarray(g) for g in gradients],
            at="end",
        )

    def result(
        self,
        *,
        train: Metrics,
        validation: Metrics | None,
        boundary: np.ndarray | None,
        seconds: float,
        timing: dict[str, Any],
    ) -> dict[str, Any]:
        """result.json's content (core/experiment/result.py): the series, metrics and diagnosis."""
        after = {"train": _metrics(train)}
        if validation is not None:
            after["validation"] = _metrics(validation)
        recorder = self.recorder
        series = recorder.series()
        history = recorder.history
        result: dict[str, Any] = {
            "version": RESULT_VERSION,
            "spec": self.spec.to_json_dict(),
            "seed": self.spec.seed,
            "dataset": self._dataset_section(),
            "layers": self._layers(),
            "capture": recorder.capture_axis(),
            "series": series,
            "initial": recorder.initial(),
            "tutorial": recorder.tutorial(),
            "histograms": recorder.histograms(),
            "through_time": recorder.through_time(),
            "channels": recorder.channels(),
            "history": history,
            "metrics": {
                "before": self.before["train"],
                "after": after["train"],
                **self._baseline(),
                **(
                    {
                        "validation_before": self.before["validation"],
                        "validation_after": after["validation"],
                    }
                    if self.data.has_validation
                    else {}
                ),
            },
            "boundary": None if boundary is None else self._boundary(boundary),
            "epochs_run": recorder.epochs_done,
            "diverged_at_epoch": self.diverged_at,
            "device": device_info(),
            "timing": {"seconds": round(seconds, 4), **timing},
        }
        result["diagnosis"] = advise(self.spec, diagnose(result))
        result["diverged"] = "diverged" in result["diagnosis"]["verdicts"]
        return result

    def arrays(self) -> bytes | None:
        extra = {"dataset/x": self.data.x_train, "dataset/y": self.data.y_train}
        return self.recorder.raw_npz(extra) if self.spec.capture.raw else None

    def _baseline(self) -> dict[str, Any]:
        """Regression: the loss of always predicting the mean target, what "learned
        nothing" scores (a run that solved the task is far under it)."""
        baseline = self.data.baseline_loss()
        return {} if baseline is None else {"baseline": {"loss": finite_or_none(baseline)}}

    def _layers(self) -> list[dict[str, Any]]:
        architecture = self.architecture
        if isinstance(architecture, LayeredArchitecture):
            return layer_entries(architecture.shapes, regression=architecture.regression)
        counts = [(a + 1) * b for a, b in itertools.pairwise(architecture.widths)]
        units = architecture.widths[1:]
        kinds = [str(a) for a in architecture.activations] + [
            output_activation(units[-1], regression=architecture.regression)
        ]
        fan_ins = architecture.widths[:-1]
        return [
            {
                "name": name,
                "class_name": "Dense",
                "units": width,
                "activation": kind,
                "parameters": count,
                "kernel_size": fan_in * width,
                "output_shape": [width],
            }
            for name, width, kind, count, fan_in in zip(
                self.layer_names, units, kinds, counts, fan_ins, strict=True
            )
        ]

    def _dataset_section(self) -> dict[str, Any]:
        data = self.data
        keep = np.sort(self.rng.permutation(len(data.y_train))[:DATASET_POINTS])
        x, projection = data.x_train[keep].reshape(len(keep), -1), "raw"
        if data.n_features > 2:
            x, projection = _pca_2d(x), "pca"
        dataset = self.spec.dataset
        return {
            "kind": str(dataset.kind),
            # What plots and people call it: an uploaded file's name, else the kind.
            "name": dataset.uploaded.name if dataset.data is not None else str(dataset.kind),
            "id": dataset.id,
            "task": "regression" if data.regression else "classification",
            "sample_shape": list(sample_shape(self.spec.dataset)),
            "n_train": len(data.y_train),
            "n_validation": len(data.y_val),
            "n_features": data.n_features,
            "n_classes": data.n_classes,
            "standardized": dataset.standardized,
            "points": {
                "x": np.round(x, 5).tolist(),
                "y": data.y_train[keep].tolist(),
                "projection": projection,
            },
        }

    def _boundary(self, probabilities: np.ndarray) -> dict[str, Any]:
        """The trained model's `probabilities` on `grid`, for 2-D sets.

        `z` holds P(class 1) for two classes, else the most likely class.
        """
        xs, ys = self._grid_axes
        z = probabilities if probabilities.ndim == 1 else probabilities.argmax(axis=-1)
        return {
            "x": finite_list(xs),
            "y": finite_list(ys),
            "z": [finite_list(row) for row in z.reshape(BOUNDARY_RESOLUTION, BOUNDARY_RESOLUTION)],
            "classes": self.data.n_classes,
        }


def _metrics(metrics: Metrics) -> dict[str, float | None]:
    loss, accuracy = metrics
    return {"loss": finite_or_none(loss), "accuracy": finite_or_none(accuracy)}


def _pca_2d(x: np.ndarray) -> np.ndarray:
    centered = x - x.mean(axis=0)
    _, _, components = np.linalg.svd(centered, full_matrices=False)
    return centered @ components[:2].T


@functools.cache
def device_info() -> dict[str, str]:
    """Which device trains here: the first GPU TensorFlow sees, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = str(details.get("device_name", gpus[0].name))
        return {"kind": "gpu", "name": name, "tensorflow": tf.__version__}
    return {"kind": "cpu", "name": cpu_name(), "tensorflow": tf.__version__}


def configure_gpu_memory_growth() -> None:
    """Let TensorFlow take GPU memory as it needs it rather than all at once.

    Must run before the first tensor is placed on a GPU; a no-op without one.
    """
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
