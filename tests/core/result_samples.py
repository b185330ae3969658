"""Synthetic results in the `core.experiment.result` layout, for tests that need no training."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.experiment.result import RESULT_VERSION, dumps_result

STAT_KEYS = (
    "weight_mean",
    "weight_std",
    "weight_norm",
    "weight_max_abs",
    "grad_mean",
    "grad_std",
    "grad_norm",
    "grad_max_abs",
    "update_ratio",
)
SATURATING = {"sigmoid", "tanh"}
DYING = {"relu"}
LEAKY = {"leaky_relu", "elu", "selu", "gelu", "swish"}


def make_result(
    *,
    activations: Sequence[str] = ("sigmoid", "relu", "linear"),
    units: int = 5,
    epochs: int = 10,
    every: str = "epoch",
    steps_per_epoch: int = 4,
    n_classes: int = 2,
    n_features: int = 2,
    n_points: int = 200,
    histogram_epochs: Sequence[int] | None = None,
    bins: int = 12,
    grid: int = 25,
    seed: int = 0,
    timesteps: int = 12,
    filters: int = 6,
) -> dict[str, Any]:
    """A finished run: hidden layers with the given activations plus the output.

    hidden_1 also stands in for a recurrent layer over `timesteps` steps (none for 0):
    its ‖dL/dh_t‖ in `through_time` shrinks by about 2x per step back from the last,
    less so as training goes on. hidden_2 also stands in for a convolution of `filters`
    output channels (none for 0): in `channels` its first is dead (a zero gradient
    throughout), the others' norms spread over a decade and shrink as training goes on.

    Gradients shrink by 10x per layer from the output back (vanishing), so the
    plots have a clear shape. Passed through strict JSON, as clients see it.
    """
    rng = np.random.default_rng(seed)
    names = [f"hidden_{index + 1}" for index in range(len(activations))] + ["output"]
    points = epochs * steps_per_epoch if every == "step" else epochs
    capture_epoch = (
        [1 + index // steps_per_epoch for index in range(points)]
        if every == "step"
        else list(range(1, epochs + 1))
    )
    capture_step = (
        list(range(points))
        if every == "step"
        else [(epoch - 1) * steps_per_epoch for epoch in capture_epoch]
    )
    snapshots = list(histogram_epochs or np.linspace(1, epochs, 5).round().astype(int))
    depth = len(names)
    result: dict[str, Any] = {
        "version": RESULT_VERSION,
        "spec": {"seed": seed},
        "seed": seed,
        "dataset": _dataset(rng, n_classes, n_features, n_points),
        "layers": [
            {
                "name": name,
                "units": 1 if name == "output" else units,
                "activation": activations[index] if name != "output" else "sigmoid",
                "parameters": units * (n_features + 1),
            }
            for index, name in enumerate(names)
        ],
        "capture": {"every": every, "points": points, "epoch": capture_epoch, "step": capture_step},
        "series": {
            name: _layer_series(rng, points, 10.0 ** -(depth - 1 - index))
            for index, name in enumerate(names)
        },
        "initial": {},
        "tutorial": _tutorial(rng, names, epochs),
        "histograms": {
            "epochs": snapshots,
            "at": ["start"] * (len(snapshots) - 1) + ["end"],
            "bins": bins,
        }
        | {
            name: _histograms(rng, len(snapshots), bins, 10.0 ** -(depth - 1 - i))
            for i, name in enumerate(names)
        },
        "history": {
            "epoch": list(range(1, epochs + 1)),
            "loss": list(np.linspace(0.7, 0.3, epochs)),
            "accuracy": list(np.linspace(0.5, 0.9, epochs)),
        },
        "metrics": {
            "before": {"loss": 0.72, "accuracy": 0.5},
            "after": {"loss": 0.3, "accuracy": 0.9},
        },
        "boundary": _boundary(grid, n_classes) if n_features == 2 else None,
        "through_time": _through_time(names[0], timesteps, capture_epoch, capture_step, epochs)
        if timesteps
        else None,
        "channels": _channels(names[1], filters, capture_epoch, capture_step, epochs)
        if filters
        else None,
        "diagnosis": {"verdicts": ["vanishing"], "evidence": {}, "thresholds": {}},
        "diverged": False,
        "device": {"name": "CPU", "tensorflow": "2.21.0"},
        "timing": {"seconds": 1.0, "compile_seconds": 0.5, "cached_graph": False},
    }
    for name, activation in zip(names, activations, strict=False):
        result["series"][name]["activation"] = _activation(activation, rng, points)
    for index, name in enumerate(names):
        result["initial"][name] = {"kernel": {"weight_mean": 0.0, "weight_std": 1.0 + index}}
    json_text: str = dumps_result(result)
    loaded: dict[str, Any] = json.loads(json_text)
    return loaded


def make_diverged_result(*, every: str = "epoch") -> dict[str, Any]:
    """A run whose numbers blow up at epoch 6 and are null from then on.

    hidden_2 is null everywhere (an all-None series), and the last histogram
    snapshot is non-finite.
    """
    result = make_result(every=every)
    cut = next(i for i, epoch in enumerate(result["capture"]["epoch"]) if epoch >= 6)
    for name, layer in result["series"].items():
        for part in ("kernel", "bias"):
            for key, values in layer[part].items():
                values[cut - 1] = 1e30
                values[cut:] = [None] * (len(values) - cut)
                if name == "hidden_2":
                    layer[part][key] = [None] * len(values)
        if layer.get("activation"):
            for key, values in layer["activation"].items():
                if values is not None:
                    values[cut:] = [None] * (len(values) - cut)
                    if name == "hidden_2":
                        layer["activation"][key] = [None] * len(values)
    tutorial = result["tutorial"]
    for group in ("weights", "gradients"):
        for name, stats in tutorial[group].items():
            for key, values in stats.items():
                values[6:] = [None] * (len(values) - 6)
                if name == "hidden_2":
                    stats[key] = [None] * len(values)
    tutorial["loss"][6:] = [None] * (len(tutorial["loss"]) - 6)
    result["history"]["loss"][6:] = [None] * (len(result["history"]["loss"]) - 6)
    for name in result["series"]:
        last = result["histograms"][name]["gradients"][-1]
        last["edges"] = [None] * len(last["edges"])
        last["counts"] = [0] * len(last["counts"])
    result["boundary"]["z"] = [[None] * len(row) for row in result["boundary"]["z"]]
    for entry in [*result["through_time"].values(), *result["channels"].values()]:
        norms = entry["gradient_norm"]
        norms[cut - 1] = [1e30] * len(norms[cut - 1])
        norms[cut:] = [[None] * len(row) for row in norms[cut:]]
    result["metrics"]["after"] = {"loss": None, "accuracy": None}
    result["diagnosis"]["verdicts"] = ["diverged"]
    result["diverged"] = True
    return result


def _through_time(
    name: str, timesteps: int, epochs: list[int], steps: list[int], total: int
) -> dict[str, Any]:
    t = np.arange(1, timesteps + 1)
    rows = [list(0.1 * 2.0 ** (-(timesteps - t) * (1.0 - 0.5 * epoch / total))) for epoch in epochs]
    return {
        name: {
            "timesteps": list(range(1, timesteps + 1)),
            "epoch": epochs,
            "step": steps,
            "gradient_norm": rows,
            "initial": rows[0],
        }
    }


def _channels(
    name: str, filters: int, epochs: list[int], steps: list[int], total: int
) -> dict[str, Any]:
    spread = 10.0 ** np.linspace(-1.0, 0.0, filters)
    spread[0] = 0.0  # a dead filter
    rows = [list(0.05 * spread * (1.0 - 0.5 * epoch / total)) for epoch in epochs]
    return {
        name: {
            "channels": list(range(filters)),
            "epoch": epochs,
            "step": steps,
            "gradient_norm": rows,
            "initial": rows[0],
        }
    }


def _dataset(rng: np.random.Generator, n_classes: int, n_features: int, n: int) -> dict[str, Any]:
    labels = rng.integers(0, n_classes, n)
    radius = 0.5 + 0.5 * labels / max(n_classes - 1, 1)
    angle = rng.uniform(0, 2 * np.pi, n)
    x = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    x += rng.normal(0, 0.05, x.shape)
    return {
        "kind": "circles" if n_features == 2 else "digits",
        "n_train": n,
        "n_validation": 0,
        "n_features": n_features,
        "n_classes": n_classes,
        "points": {
            "x": x.tolist(),
            "y": labels.tolist(),
            "projection": "raw" if n_features == 2 else "pca",
        },
    }


def _activation(kind: str, rng: np.random.Generator, points: int) -> dict[str, Any]:
    fraction = np.clip(np.linspace(0.1, 0.6, points) + rng.normal(0, 0.02, points), 0, 1)
    return {
        "mean": list(rng.normal(0.5, 0.05, points)),
        "std": list(rng.uniform(0.1, 0.2, points)),
        "saturated": list(fraction) if kind in SATURATING else None,
        "dead": list(fraction / 2) if kind in DYING else None,
        "negative": list(fraction / 3) if kind in LEAKY else None,
    }


def _layer_series(rng: np.random.Generator, points: int, scale: float) -> dict[str, Any]:
    def stats() -> dict[str, list[float]]:
        out = {key: list(rng.uniform(0.5, 1.5, points)) for key in STAT_KEYS}
        for key in ("grad_mean", "grad_std", "grad_norm", "grad_max_abs"):
            out[key] = [value * scale for value in out[key]]
        return out

    return {"kernel": stats(), "bias": stats()}


def _tutorial(rng: np.random.Generator, names: list[str], epochs: int) -> dict[str, Any]:
    depth = len(names)
    return {
        "epochs": list(range(epochs + 1)),
        "weights": {
            name: {
                "mean": list(rng.normal(0, 0.1, epochs + 1)),
                "std": list(np.linspace(1.0, 1.2 + 0.1 * index, epochs + 1)),
            }
            for index, name in enumerate(names)
        },
        "gradients": {
            name: {
                "mean": list(rng.normal(0, 1e-3, epochs)),
                "std": list(10.0 ** -(depth - index) * rng.uniform(0.5, 1.5, epochs)),
            }
            for index, name in enumerate(names)
        },
        "loss": list(np.linspace(0.7, 0.3, epochs)),
    }


def _histograms(
    rng: np.random.Generator, snapshots: int, bins: int, scale: float
) -> dict[str, Any]:
    def snapshot(width: float) -> dict[str, Any]:
        values = rng.normal(0, width, 500)
        counts, edges = np.histogram(values, bins=bins)
        return {"edges": edges.tolist(), "counts": counts.tolist()}

    return {
        "weights": [snapshot(1.0) for _ in range(snapshots)],
        "gradients": [snapshot(scale * (1 + index)) for index in range(snapshots)],
    }


def _boundary(grid: int, n_classes: int) -> dict[str, Any]:
    x = np.linspace(-1.5, 1.5, grid)
    y = np.linspace(-1.5, 1.5, grid)
    xx, yy = np.meshgrid(x, y)
    radius = np.hypot(xx, yy)
    if n_classes == 2:
        z = 1 / (1 + np.exp(-8 * (radius - 0.75)))
    else:
        z = np.minimum((radius / 1.5 * n_classes).astype(int), n_classes - 1).astype(float)
    return {"x": x.tolist(), "y": y.tolist(), "z": z.tolist(), "classes": n_classes}
