"""Turns the arrays each compiled epoch returns into the result's time series.

NumPy only: the compiled loop hands over one bundle per epoch, the recorder
keeps what the spec asked for and lays it out as core/experiment/result.py describes.
A capture switch that is off (`capture.weights`, `gradients`, `activations`)
leaves its statistics out of every part of the result, not just the series.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.experiment.result import (
    ACTIVATION_SOURCES,
    TENSOR_STATS,
    finite_list,
    finite_or_none,
)
from core.experiment.spec import CaptureSpec

if TYPE_CHECKING:
    from core.engine.trainer import EpochArrays

_GRAD_MAX = TENSOR_STATS.index("grad_max_abs")
_WEIGHTS = slice(0, 4)
_GRADIENTS = slice(4, 8)
# Which switch keeps each statistic. The update ratio |w_after - w_before| /
# |w_before| is made of weights alone (the optimizer's step, not the gradient:
# RMSprop and Adam rescale it), so it goes with them.
_KEPT_BY = {stat: "gradients" if stat.startswith("grad_") else "weights" for stat in TENSOR_STATS}
_ACTIVATION_STATS = ("mean", "std", "saturated", "dead", "negative")


def snapshot_epochs(epochs: int, count: int) -> list[int]:
    """The epochs whose first step is a histogram snapshot: 1 and evenly on towards the last.

    They are `count - 1` of the `count` evenly spaced from the first epoch to
    the last (fewer in a short run, where they would repeat): the last of
    the `count` is the snapshot at the end of training, after the last step.
    """
    return sorted({round(e) for e in np.linspace(1, epochs, count)[:-1]})


def histogram(values: np.ndarray, bins: int) -> dict[str, list[float | None] | list[int]]:
    """Counts over a range symmetric about zero, from the finite values only.

    With an even count of bins, zero is an edge, exactly: exact zeros (a dead unit's
    gradients) count in the bin right of it, where a computed edge would put them on
    either side by the last bit of the largest value.
    """
    finite = values[np.isfinite(values)]
    edge = float(np.abs(finite).max()) if finite.size else 0.0
    edge = edge if edge > 0 else 1.0
    edges = np.linspace(-edge, edge, bins + 1)
    if bins % 2 == 0:
        edges[bins // 2] = 0.0
    counts, _ = np.histogram(finite, bins=edges)
    return {"edges": finite_list(edges), "counts": counts.astype(int).tolist()}


@dataclass
class _PointNorms:
    """Gradient norms a step records, (steps, columns), kept per capture point: each
    step's at step points, the mean over the epoch's steps at epoch points, as the other
    gradient statistics; `initial` is the first step's, the untrained network's."""

    points: list[np.ndarray] = field(default_factory=list)  # (k, columns) per epoch
    initial: np.ndarray | None = None

    def add(self, norms: np.ndarray, *, every_step: bool) -> None:
        if self.initial is None:
            self.initial = norms[0]
        if every_step:
            self.points.append(norms)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self.points.append(norms.mean(axis=0, keepdims=True))

    def section(
        self, layers: list[tuple[str, int]], axis: str, first: int, at: dict[str, list[int]]
    ) -> dict[str, Any] | None:
        """Per layer, its columns at each capture point, named beside them: `axis`
        (numbered from `first`), the points' `epoch` and `step` (`at`) and `initial`."""
        if not self.points or self.initial is None:
            return None
        norms = np.concatenate(self.points)
        out: dict[str, Any] = {}
        start = 0
        for name, count in layers:
            part = slice(start, start + count)
            out[name] = {
                axis: list(range(first, first + count)),
                **{key: list(values) for key, values in at.items()},
                "gradient_norm": [finite_list(row) for row in norms[:, part]],
                "initial": finite_list(self.initial[part]),
            }
            start += count
        return out


@dataclass
class Recorder:
    """Accumulates capture points and history over a run.

    `variable_parts` names each captured variable's layer and part (an MLP's:
    each layer's kernel and bias), `probe_names` the layer of each row of the
    activation statistics (an MLP's hidden layers), `through_time_layers` each
    recurrent layer and its time steps, `channel_layers` each convolution and its
    filters, in the order the trainer writes them.
    """

    layer_names: list[str]
    capture: CaptureSpec
    epochs: int
    variable_parts: list[tuple[str, str]] = field(default_factory=list)
    probe_names: list[str] | None = None
    through_time_layers: list[tuple[str, int]] = field(default_factory=list)
    channel_layers: list[tuple[str, int]] = field(default_factory=list)
    initial_weight_stats: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    # The gradient at the very first step: the untrained network's (variables, 4).
    initial_gradient_stats: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    initial_activation_stats: np.ndarray = field(
        default_factory=lambda: np.zeros((0, len(_ACTIVATION_STATS)))
    )
    _points: list[np.ndarray] = field(default_factory=list)  # (k, variables, 9) per epoch
    _activation_points: list[np.ndarray] = field(default_factory=list)  # (k, hidden, 5)
    _point_epoch: list[int] = field(default_factory=list)
    _point_step: list[int] = field(default_factory=list)
    _first_step: list[np.ndarray] = field(default_factory=list)  # (variables, 9) per epoch
    _end_weights: list[np.ndarray] = field(default_factory=list)  # (variables, 4) per epoch
    history: dict[str, list[float | None]] = field(default_factory=dict)
    _histogram_epochs: list[int] = field(default_factory=list)
    _histogram_at: list[str] = field(default_factory=list)
    _histograms: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    _raw: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _steps_done: int = 0
    _through_time: _PointNorms = field(default_factory=_PointNorms)  # columns: sum of T
    _channels: _PointNorms = field(default_factory=_PointNorms)  # columns: sum of filters

    def __post_init__(self) -> None:
        if not self.variable_parts:
            self.variable_parts = [(n, p) for n in self.layer_names for p in ("kernel", "bias")]
        if self.probe_names is None:
            self.probe_names = self.layer_names[:-1]

    def _columns(self, layer: str) -> list[tuple[str, int]]:
        """(part, column) of each of `layer`'s captured variables."""
        return [(part, k) for k, (name, part) in enumerate(self.variable_parts) if name == layer]

    def _kernel_columns(self) -> list[tuple[str, int]]:
        """(layer, column) of each layer's kernel, for the layers that have one."""
        return [(name, k) for k, (name, part) in enumerate(self.variable_parts) if part == "kernel"]

    @property
    def step_capture(self) -> bool:
        return self.capture.every == "step"

    def _kept_stats(self) -> list[tuple[int, str]]:
        """(column, name) of the tensor statistics the capture switches keep."""
        return [
            (k, stat)
            for k, stat in enumerate(TENSOR_STATS)
            if getattr(self.capture, _KEPT_BY[stat])
        ]

    @property
    def epochs_done(self) -> int:
        return len(self._end_weights)

    # ------------------------------------------------------------------ per epoch

    def add_epoch(self, epoch: int, arrays: EpochArrays) -> dict[str, float | None]:
        """Record epoch `epoch` (1-based); returns its loss and accuracy."""
        stats = arrays.step_stats
        steps = len(stats)
        if epoch == 1:
            self.initial_weight_stats = stats[0][:, _WEIGHTS]
            self.initial_gradient_stats = stats[0][:, _GRADIENTS]
        self._first_step.append(stats[0])
        self._end_weights.append(arrays.end_weight_stats)
        if self.step_capture:
            self._points.append(stats)
            if self.capture.activations:
                assert arrays.step_activation_stats is not None
                self._activation_points.append(arrays.step_activation_stats)
            self._point_step.extend(range(self._steps_done, self._steps_done + steps))
            self._point_epoch.extend([epoch] * steps)
        else:
            self._points.append(_epoch_point(stats, arrays.end_weight_stats)[None])
            if self.capture.activations:
                assert arrays.end_activation_stats is not None
                self._activation_points.append(arrays.end_activation_stats[None])
            self._point_step.append(self._steps_done + steps - 1)
            self._point_epoch.append(epoch)
        self._steps_done += steps
        if self.capture.gradients:
            for norms, kept in (
                (arrays.step_through_time, self._through_time),
                (arrays.step_channels, self._channels),
            ):
                if norms is not None:
                    kept.add(norms, every_step=self.step_capture)
        weights = arrays.step_size / arrays.step_size.sum()
        loss = float(np.dot(arrays.step_loss, weights))
        accuracy = float(np.dot(arrays.step_accuracy, weights))
        self.history.setdefault("epoch", []).append(epoch)
        self.history.setdefault("loss", []).append(finite_or_none(loss))
        self.history.setdefault("accuracy", []).append(finite_or_none(accuracy))
        return {"loss": finite_or_none(loss), "accuracy": finite_or_none(accuracy)}

    def _points_at(self) -> dict[str, list[int]]:
        return {"epoch": self._point_epoch, "step": self._point_step}

    def through_time(self) -> dict[str, Any] | None:
        """Per recurrent layer, ||dL/dh_t|| at each capture point (core/experiment/result.py)."""
        return self._through_time.section(
            self.through_time_layers, "timesteps", 1, self._points_at()
        )

    def channels(self) -> dict[str, Any] | None:
        """Per convolution, the norm of its kernel's gradient for each output channel at
        each capture point (core/experiment/result.py)."""
        return self._channels.section(self.channel_layers, "channels", 0, self._points_at())

    def add_validation(self, metrics: dict[str, float | None]) -> None:
        self.history.setdefault("val_loss", []).append(metrics["loss"])
        self.history.setdefault("val_accuracy", []).append(metrics["accuracy"])

    def add_histograms(
        self,
        epoch: int,
        weights: list[np.ndarray] | None,
        gradients: list[np.ndarray] | None,
        *,
        at: str = "start",
    ) -> None:
        """Histograms of each layer's kernel weights and gradients in epoch `epoch`.

        At the "start": the weights before its first step and that step's
        gradient. At the "end": the weights after its last step and that
        step's gradient. `None` for a part the capture leaves out.
        """
        bins = self.capture.histogram_bins
        self._histogram_epochs.append(epoch)
        self._histogram_at.append(at)
        for part, tensors in (("weights", weights), ("gradients", gradients)):
            if tensors is None:
                continue
            for name, column in self._kernel_columns():
                layer = self._histograms.setdefault(name, {})
                layer.setdefault(part, []).append(histogram(tensors[column], bins))

    def add_raw(
        self,
        variable_names: list[str],
        weights: list[np.ndarray] | None,
        grads: list[np.ndarray] | None,
    ) -> None:
        """Raw tensors at one or more capture points, each stacked on a leading axis.

        `None` for a part the capture leaves out.
        """
        for part, tensors in (("weights", weights), ("gradients", grads)):
            if tensors is None:
                continue
            for name, tensor in zip(variable_names, tensors, strict=True):
                self._raw.setdefault(f"{name}/{part}", []).append(tensor.astype(np.float32))

    # -------------------------------------------------------------------- results

    def series(self) -> dict[str, Any]:
        points = np.concatenate(self._points) if self._points else np.zeros((0, 0, 9))
        acts = np.concatenate(self._activation_points) if self._activation_points else None
        kept = self._kept_stats()
        out: dict[str, Any] = {name: {} for name in self._series_names()}
        for name in self.layer_names:
            for part, column in self._columns(name):
                if kept:
                    out[name][part] = {stat: finite_list(points[:, column, k]) for k, stat in kept}
        if acts is not None:
            for row, name in enumerate(self.probe_names or []):
                out[name]["activation"] = _activation_series(acts[:, row])
        return out

    def _series_names(self) -> list[str]:
        """Layers with weights or probed activations, in network order (the output last)."""
        names = list(self.layer_names)
        names += [name for name in self.probe_names or [] if name not in names]
        return sorted(names, key=lambda n: (n == "output", _positions(n)))

    def capture_axis(self) -> dict[str, Any]:
        axis: dict[str, Any] = {
            "every": str(self.capture.every),
            "points": len(self._point_epoch),
            "epoch": list(self._point_epoch),
            "step": list(self._point_step),
        }
        if self.capture.activations:
            # what each kind of point's activation statistics were computed on
            axis["activations"] = dict(ACTIVATION_SOURCES)
        return axis

    def initial(self) -> dict[str, Any]:
        """The untrained network: its weights, the gradient of the first step, and its
        activations on the probe, as far as the capture keeps them."""
        out: dict[str, Any] = {name: {} for name in self._series_names()}
        kept = [
            (self.initial_weight_stats, TENSOR_STATS[_WEIGHTS], self.capture.weights),
            (self.initial_gradient_stats, TENSOR_STATS[_GRADIENTS], self.capture.gradients),
        ]
        for name in self.layer_names:
            for part, column in self._columns(name):
                stats = {
                    stat: finite_or_none(values[column, k])
                    for values, names, captured in kept
                    if captured
                    for k, stat in enumerate(names)
                }
                if stats:
                    out[name][part] = stats
        for index, name in enumerate(self.probe_names or []):
            if index < len(self.initial_activation_stats):
                row = self.initial_activation_stats[index]
                out[name]["activation"] = {
                    stat: finite_or_none(row[k]) for k, stat in enumerate(_ACTIVATION_STATS)
                }
        return out

    def tutorial(self) -> dict[str, Any]:
        """The tutorial's own view: kernel weights before training and after each
        epoch, kernel gradients at each epoch's first step, the loss per epoch."""
        ends = np.stack([self.initial_weight_stats, *self._end_weights])
        firsts = np.stack(self._first_step) if self._first_step else np.zeros((0, 0, 9))
        weights, gradients = {}, {}
        for name, column in self._kernel_columns():
            weights[name] = {
                "mean": finite_list(ends[:, column, 0]),
                "std": finite_list(ends[:, column, 1]),
            }
            gradients[name] = {
                "mean": finite_list(firsts[:, column, 4]),
                "std": finite_list(firsts[:, column, 5]),
            }
        return {
            "epochs": list(range(self.epochs_done + 1)),
            **({"weights": weights} if self.capture.weights else {}),
            **({"gradients": gradients} if self.capture.gradients else {}),
            "loss": list(self.history.get("loss", [])),
        }

    def histograms(self) -> dict[str, Any] | None:
        if not self._histograms:
            return None
        return {
            "epochs": self._histogram_epochs,
            "at": self._histogram_at,
            "bins": self.capture.histogram_bins,
        } | self._histograms

    def raw_npz(self, extra: dict[str, np.ndarray]) -> bytes:
        """arrays.npz: the raw tensors captured (none with weights and gradients off), `extra`."""
        arrays = {name: np.concatenate(parts) for name, parts in self._raw.items()} | extra
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()


def _positions(name: str) -> tuple[int, ...]:
    """A layer list's positions in a name (`conv2d_3`: (3,), `residual_2.dense_1`: (2, 1));
    () for the MLP's, which keep their order."""
    if name.startswith("hidden_"):
        return ()
    tails = [part.rsplit("_", 1)[-1] for part in name.split(".")]
    return tuple(int(t) for t in tails if t.isdigit())


def _epoch_point(stats: np.ndarray, end_weights: np.ndarray) -> np.ndarray:
    """One capture point per epoch: weights at its end, gradients averaged over its steps.

    The largest |g| is the epoch's largest finite one (so a run that blows up
    mid-epoch still shows how large its gradients grew); undefined update
    ratios (a zero weight norm) are left out of the average.
    """
    point = np.empty(stats.shape[1:], dtype=np.float64)
    point[:, _WEIGHTS] = end_weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN ratio columns are expected
        point[:, 4:_GRAD_MAX] = stats[:, :, 4:_GRAD_MAX].mean(axis=0)
        point[:, _GRAD_MAX] = np.nanmax(
            np.where(np.isinf(stats[:, :, _GRAD_MAX]), np.nan, stats[:, :, _GRAD_MAX]), axis=0
        )
        point[:, -1] = np.nanmean(stats[:, :, -1], axis=0)
    return point


def _activation_series(rows: np.ndarray) -> dict[str, list[float | None] | None]:
    out: dict[str, list[float | None] | None] = {}
    for k, stat in enumerate(_ACTIVATION_STATS):
        column = rows[:, k]
        # saturated/dead/negative are NaN in every row where the activation has no such notion
        out[stat] = None if k >= 2 and np.isnan(column).all() else finite_list(column)
    return out
