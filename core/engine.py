"""The training engine's entry point: one spec in, the result and raw arrays out.

`run_experiment` is what `gradwatch run` and the worker call. It imports
TensorFlow (through core.trainer), so import this module only where training
runs, never in a process that forks workers.

Example:
    >>> from core.spec import ExperimentSpec
    >>> output = run_experiment(ExperimentSpec(training={"epochs": 3}))
    >>> output.result["diagnosis"]["verdicts"]
    ['vanishing']
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from core.datasets import Dataset, load_dataset
from core.diagnosis import diagnose
from core.graph_cache import BOUNDARY_RESOLUTION, Shapes, checkout, trainer_key
from core.hooks import TrainingHook
from core.network import Architecture, layer_parameter_counts
from core.recorder import Recorder, snapshot_epochs
from core.result import RESULT_VERSION, finite_list, finite_or_none
from core.spec import CaptureEvery, ExperimentSpec, steps_per_epoch
from core.trainer import CompiledTrainer, EpochArrays, default_learning_rate

DATASET_POINTS = 2000  # points kept in the result for the dataset plot


@dataclass(frozen=True)
class RunOutput:
    """A finished run: `result` is result.json's content, `arrays` arrays.npz's bytes."""

    result: dict[str, Any]
    arrays: bytes | None


def run_experiment(spec: ExperimentSpec, hooks: Sequence[TrainingHook] = ()) -> RunOutput:
    """Train the spec's network while capturing every layer, then diagnose it.

    Raises `core.hooks.TrainingCancelled` when a hook does.
    """
    started = time.perf_counter()
    data = load_dataset(spec.dataset, seed=spec.seed)
    architecture = Architecture.from_spec(
        spec.model,
        n_features=data.n_features,
        n_outputs=1 if data.n_classes == 2 else data.n_classes,
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
    with checkout(key, shapes, steps=spec.training.epochs * steps_per_epoch(spec)) as (
        trainer,
        reused,
    ):
        trainer.reset(
            spec.model.initializer,
            seed=spec.seed,
            learning_rate=optimizer.learning_rate or default_learning_rate(optimizer.kind),
        )
        run = _Run(spec, data, trainer)
        for hook in hooks:
            hook.on_train_begin(spec.training.epochs)
        run.train(hooks)
        seconds = time.perf_counter() - started
        result = run.result(architecture, seconds=seconds, reused=reused)
    for hook in hooks:
        hook.on_train_end(result["metrics"]["after"])
    return RunOutput(result=result, arrays=run.arrays())


class _Run:
    """One run's state: the data in epoch order, the recorder, the metrics."""

    def __init__(self, spec: ExperimentSpec, data: Dataset, trainer: CompiledTrainer) -> None:
        self.spec, self.data, self.trainer = spec, data, trainer
        # One generator, drawn in a fixed order, makes the run repeatable; the
        # probe is drawn even when unused, so every switch trains the same numbers.
        self.rng = np.random.default_rng(spec.seed)
        probe_index = self.rng.permutation(len(data.y_train))[: spec.capture.probe_size]
        if not spec.capture.activations:
            probe_index = probe_index[:0]
        self.probe = data.x_train[np.sort(probe_index)]
        self.layer_names = trainer.key.architecture.layer_names
        self.variable_names = [f"{n}/{p}" for n in self.layer_names for p in ("kernel", "bias")]
        self.recorder = Recorder(
            layer_names=self.layer_names,
            capture=spec.capture,
            epochs=spec.training.epochs,
        )
        self.before: dict[str, dict[str, float | None]] = {}
        if self.data.has_validation:
            self.before["validation"] = self._metrics(self.data.x_val, self.data.y_val)
        capture = spec.capture
        self.snapshots = (
            set(snapshot_epochs(spec.training.epochs, capture.histogram_snapshots))
            if capture.histograms and (capture.weights or capture.gradients)
            else set()
        )
        self.diverged_at: int | None = None

    def _evaluate(self) -> dict[str, dict[str, float | None]]:
        metrics = {"train": self._metrics(self.data.x_train, self.data.y_train)}
        if self.data.has_validation:
            metrics["validation"] = self._metrics(self.data.x_val, self.data.y_val)
        return metrics

    def _metrics(self, x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
        loss, accuracy = self.trainer.evaluate(x, y)
        return {"loss": finite_or_none(loss), "accuracy": finite_or_none(accuracy)}

    def train(self, hooks: Sequence[TrainingHook]) -> None:
        epochs = self.spec.training.epochs
        capture = self.spec.capture
        epoch_raw = capture.raw and capture.every is CaptureEvery.EPOCH
        last: tuple[int, EpochArrays] | None = None
        for epoch in range(1, epochs + 1):
            order = self.rng.permutation(len(self.data.y_train))
            keep_start = epoch in self.snapshots or epoch_raw
            start_weights = self.trainer.weights() if keep_start and capture.weights else None
            arrays = self.trainer.train_epoch(
                self.data.x_train[order],
                self.data.y_train[order],
                self.probe,
                batch_size=self.spec.training.batch_size,
            )
            logs = self.recorder.add_epoch(epoch, arrays)
            last = epoch, arrays
            if epoch == 1:
                self.before["train"] = {
                    "loss": finite_or_none(arrays.start_loss),
                    "accuracy": finite_or_none(arrays.start_accuracy),
                }
            if keep_start:
                gradients = (
                    [np.asarray(g) for g in arrays.first_gradients] if capture.gradients else None
                )
                if epoch in self.snapshots:
                    self.recorder.add_histograms(epoch, start_weights, gradients)
                if epoch_raw:
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
            if self.data.has_validation:
                val = self._metrics(self.data.x_val, self.data.y_val)
                self.recorder.add_validation(val)
                logs |= {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}
            for hook in hooks:
                hook.on_epoch_end(epoch, epochs, logs)
            if logs["loss"] is None:
                # Once the loss is not finite every later number is NaN too.
                self.diverged_at = epoch
                break
        if self.snapshots and last is not None:
            self._final_snapshot(*last)

    def _final_snapshot(self, epoch: int, arrays: EpochArrays) -> None:
        """Histograms of the trained network (or where a diverged run stopped): the
        weights after the last step run, and that step's gradient."""
        capture = self.spec.capture
        gradients = arrays.last_gradients if capture.gradients else None
        self.recorder.add_histograms(
            epoch,
            self.trainer.weights() if capture.weights else None,
            None if gradients is None else [np.asarray(g) for g in gradients],
            at="end",
        )

    def result(self, architecture: Architecture, *, seconds: float, reused: bool) -> dict[str, Any]:
        after = self._evaluate()
        recorder = self.recorder
        series = recorder.series()
        history = recorder.history
        result: dict[str, Any] = {
            "version": RESULT_VERSION,
            "spec": self.spec.to_json_dict(),
            "seed": self.spec.seed,
            "dataset": self._dataset_section(),
            "layers": self._layers(architecture),
            "capture": recorder.capture_axis(),
            "series": series,
            "initial": recorder.initial(),
            "tutorial": recorder.tutorial(),
            "histograms": recorder.histograms(),
            "history": history,
            "metrics": {
                "before": self.before["train"],
                "after": after["train"],
                **(
                    {
                        "validation_before": self.before["validation"],
                        "validation_after": after["validation"],
                    }
                    if self.data.has_validation
                    else {}
                ),
            },
            "boundary": self._boundary(),
            "epochs_run": recorder.epochs_done,
            "diverged_at_epoch": self.diverged_at,
            "device": device_info(),
            "timing": {
                "seconds": round(seconds, 4),
                "graph_reused": reused,
                "xla": self.trainer.jit,
            },
        }
        result["diagnosis"] = diagnose(result)
        result["diverged"] = "diverged" in result["diagnosis"]["verdicts"]
        return result

    def arrays(self) -> bytes | None:
        extra = {"dataset/x": self.data.x_train, "dataset/y": self.data.y_train}
        return self.recorder.raw_npz(extra) if self.spec.capture.raw else None

    def _layers(self, architecture: Architecture) -> list[dict[str, Any]]:
        counts = layer_parameter_counts(self.trainer.network)
        units = architecture.widths[1:]
        kinds = [str(a) for a in architecture.activations] + [
            "sigmoid" if units[-1] == 1 else "softmax"
        ]
        return [
            {"name": name, "units": width, "activation": kind, "parameters": count}
            for name, width, kind, count in zip(self.layer_names, units, kinds, counts, strict=True)
        ]

    def _dataset_section(self) -> dict[str, Any]:
        data = self.data
        keep = np.sort(self.rng.permutation(len(data.y_train))[:DATASET_POINTS])
        x, projection = data.x_train[keep], "raw"
        if data.n_features > 2:
            x, projection = _pca_2d(x), "pca"
        return {
            "kind": str(self.spec.dataset.kind),
            "n_train": len(data.y_train),
            "n_validation": len(data.y_val),
            "n_features": data.n_features,
            "n_classes": data.n_classes,
            "standardized": self.spec.dataset.standardized,
            "points": {
                "x": np.round(x, 5).tolist(),
                "y": data.y_train[keep].tolist(),
                "projection": projection,
            },
        }

    def _boundary(self) -> dict[str, Any] | None:
        """The trained model's output on a grid over the data, for 2-D sets.

        `z` holds P(class 1) for two classes, else the most likely class.
        """
        if self.data.n_features != 2:
            return None
        x = self.data.x_train
        low, high = x.min(axis=0), x.max(axis=0)
        margin = 0.1 * (high - low) + 1e-3
        xs = np.linspace(low[0] - margin[0], high[0] + margin[0], BOUNDARY_RESOLUTION)
        ys = np.linspace(low[1] - margin[1], high[1] + margin[1], BOUNDARY_RESOLUTION)
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
        probabilities = self.trainer.predict(grid)
        z = probabilities if probabilities.ndim == 1 else probabilities.argmax(axis=-1)
        return {
            "x": finite_list(xs),
            "y": finite_list(ys),
            "z": [finite_list(row) for row in z.reshape(BOUNDARY_RESOLUTION, BOUNDARY_RESOLUTION)],
            "classes": self.data.n_classes,
        }


def _pca_2d(x: np.ndarray) -> np.ndarray:
    centered = x - x.mean(axis=0)
    _, _, components = np.linalg.svd(centered, full_matrices=False)
    return centered @ components[:2].T


def device_info() -> dict[str, str]:
    """Which device trains here: the first GPU TensorFlow sees, else the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = str(details.get("device_name", gpus[0].name))
        return {"kind": "gpu", "name": name, "tensorflow": tf.__version__}
    return {"kind": "cpu", "name": cpu_name(), "tensorflow": tf.__version__}


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`CPU (<model name>)` where /proc/cpuinfo names the model, else `CPU`.

    `platform.processor()` is the machine type ("x86_64") on most Linux hosts,
    and many ARM kernels list no model name at all.
    """
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as lines:
            for line in itertools.islice(lines, 64):  # the first processor's block
                key, _, value = line.partition(":")
                model = " ".join(value.split())
                if key.strip() == "model name" and model:
                    return f"CPU ({model})"
    except OSError:
        pass
    return "CPU"


def configure_gpu_memory_growth() -> None:
    """Let TensorFlow take GPU memory as it needs it rather than all at once.

    Must run before the first tensor is placed on a GPU; a no-op without one.
    """
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
