"""A study's series: its children's results reduced to the few numbers its plots draw.

`study_series` reduces the results per configuration, aggregated over seeds;
the series is stored with the study, so any size can be drawn later without
reading the children again.

Example:
    >>> series = study_series(configs, seeds, results)
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.experiment.jobs import JobStatus, Summary
from core.experiment.remedy_studies import remedy_summary
from core.experiment.spec import ExperimentSpec, dataset_shape
from core.experiment.study_summary import ChildOutcome
from core.plotting.style import as_floats, log10

SERIES_VERSION = 1
MAX_BOUNDARY_POINTS = 300  # data points drawn over each surface


def _json_list(values: np.ndarray) -> list[Any]:
    """Floats for JSON, every non-finite value as None."""
    out: list[Any] = values.tolist()
    if values.ndim == 1:
        return [v if math.isfinite(v) else None for v in out]
    return [_json_list(row) for row in values]


def stack_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of unequal length as one array, padded with NaN (a diverged run stops early)."""
    width = max((row.size for row in rows), default=0)
    out = np.full((len(rows), width), np.nan)
    for index, row in enumerate(rows):
        out[index, : row.size] = row
    return out


def _nan_stat(stat: Callable[..., np.ndarray], values: np.ndarray) -> np.ndarray:
    """`stat` over seeds; an all-NaN column is NaN, which is the right answer there."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return stat(values, axis=0)


def _at_start(initial: list[float | None], first_point: np.ndarray) -> np.ndarray:
    """Each layer's gradient statistic at the first step (the result's `initial`), or,
    for a result without it, at the first capture point."""
    if any(value is None for value in initial):
        return first_point
    return np.array(initial, dtype=np.float64)


def _kernel_layers(result: Mapping[str, Any]) -> list[str]:
    series = result.get("series") or {}
    names = [str(layer["name"]) for layer in result.get("layers") or [] if "name" in layer]
    return [
        name
        for name in names or list(series)
        if ((series.get(name) or {}).get("kernel") or {}).get("grad_norm") is not None
    ]


@dataclass
class _ConfigRuns:
    """The succeeded runs of one configuration, reduced to what the plots draw."""

    loss: list[np.ndarray]
    accuracy: list[np.ndarray]
    layers: list[str] | None = None
    std_first: list[np.ndarray] | None = None
    std_last: list[np.ndarray] | None = None
    norm_first: list[np.ndarray] | None = None
    norm_last: list[np.ndarray] | None = None
    flow_x: list[float] | None = None
    flow: list[np.ndarray] | None = None
    boundary: dict[str, Any] | None = None
    first_epoch: int | None = None
    last_epoch: int | None = None
    baselines: list[float] = field(default_factory=list)  # a regression's, per run

    def add(self, result: Mapping[str, Any]) -> None:
        history = result.get("history") or {}
        self.loss.append(as_floats(history.get("loss")))
        self.accuracy.append(as_floats(history.get("accuracy")))
        baseline = ((result.get("metrics") or {}).get("baseline") or {}).get("loss")
        if isinstance(baseline, int | float) and math.isfinite(baseline):
            self.baselines.append(float(baseline))
        self._add_gradients(result)
        if self.boundary is None and result.get("boundary"):
            self.boundary = _boundary(result)

    def _add_gradients(self, result: Mapping[str, Any]) -> None:
        names = _kernel_layers(result)
        if not names or (self.layers is not None and names != self.layers):
            return
        kernels = [result["series"][name]["kernel"] for name in names]
        stds = stack_rows([as_floats(k.get("grad_std")) for k in kernels])
        norms = stack_rows([as_floats(k.get("grad_norm")) for k in kernels])
        if stds.size == 0 or norms.size == 0:
            return
        if self.layers is None:
            self.layers = names
            self.std_first, self.std_last, self.norm_first, self.norm_last = [], [], [], []
            self.flow = []
            epochs = as_floats((result.get("capture") or {}).get("epoch"))
            self.flow_x = epochs.tolist() if epochs.size == norms.shape[1] else None
            self.first_epoch = int(epochs[0]) if epochs.size else 1
            self.last_epoch = int(epochs[-1]) if epochs.size else norms.shape[1]
        assert self.std_first is not None and self.std_last is not None
        assert self.norm_first is not None and self.norm_last is not None
        assert self.flow is not None
        initial = [((result.get("initial") or {}).get(name) or {}).get("kernel") or {}
                   for name in names]  # fmt: skip
        self.std_first.append(_at_start([k.get("grad_std") for k in initial], stds[:, 0]))
        self.std_last.append(stds[:, -1])
        self.norm_first.append(_at_start([k.get("grad_norm") for k in initial], norms[:, 0]))
        self.norm_last.append(norms[:, -1])
        self.flow.append(log10(norms))

    def to_json_dict(self, config: Mapping[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "index": config["index"],
            "label": config["label"],
            "runs": len(self.loss),
            "curves": {"loss": _band(self.loss), "accuracy": _band(self.accuracy)},
            # A regression's: the loss of predicting the mean target, mean over its runs.
            "baseline_loss": statistics.fmean(self.baselines) if self.baselines else None,
            "depth": None,
            "flow": None,
            "boundary": self.boundary,
        }
        if self.layers is not None and self.flow:
            entry["depth"] = {
                "layers": self.layers,
                "first_epoch": self.first_epoch,
                "last_epoch": self.last_epoch,
                "std_first": _geometric(self.std_first),
                "std_last": _geometric(self.std_last),
                "norm_first": _geometric(self.norm_first),
                "norm_last": _geometric(self.norm_last),
            }
            flows = self.flow
            width = min(flow.shape[1] for flow in flows)
            mean = _nan_stat(np.nanmean, np.stack([flow[:, :width] for flow in flows]))
            entry["flow"] = {
                "layers": self.layers,
                "x": (self.flow_x or list(range(1, width + 1)))[:width],
                "log10_norm": _json_list(mean),
            }
        return entry


def _band(runs: Sequence[np.ndarray]) -> dict[str, list[Any]]:
    """Per epoch: mean, min and max over seeds (a run that stopped early drops out)."""
    values = stack_rows(runs)
    if values.size == 0:
        return {"mean": [], "min": [], "max": []}
    return {
        "mean": _json_list(_nan_stat(np.nanmean, values)),
        "min": _json_list(_nan_stat(np.nanmin, values)),
        "max": _json_list(_nan_stat(np.nanmax, values)),
    }


def _geometric(runs: Sequence[np.ndarray] | None) -> list[Any]:
    """Per layer, the geometric mean over seeds: gradients spread over decades."""
    logs = log10(np.stack(list(runs or [])))
    return _json_list(10.0 ** _nan_stat(np.nanmean, logs))


def _boundary(result: Mapping[str, Any]) -> dict[str, Any]:
    boundary = result["boundary"]
    points = (result.get("dataset") or {}).get("points") or {}
    x = points.get("x") or []
    y = points.get("y") or []
    keep: list[int] = []
    if points.get("projection", "raw") == "raw" and x and len(x[0]) == 2:
        step = max(1, math.ceil(len(x) / MAX_BOUNDARY_POINTS))
        keep = list(range(0, len(x), step))
    after = (result.get("metrics") or {}).get("after") or {}
    # Probabilities to 4 decimals: the surface is drawn in 10 bands, and the series
    # of a large study stays a few MB.
    z = np.round(
        as_floats([[math.nan if v is None else v for v in row] for row in boundary["z"]]), 4
    )
    return {
        "x": boundary["x"],
        "y": boundary["y"],
        "z": _json_list(z),
        "classes": int(boundary.get("classes") or 2),
        "accuracy": after.get("accuracy"),
        "points": {"x": [x[i] for i in keep], "y": [y[i] for i in keep]},
    }


def study_series(
    configs: Sequence[Mapping[str, Any]],
    seeds: int,
    results: Iterable[Mapping[str, Any] | None],
    *,
    remedies: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The numbers the study's plots draw, from its children's results in child order.

    `results` may be a generator (each result is reduced, then dropped); None
    stands for a child that did not succeed. A remedy study's `remedies` (its
    request's section) adds what each fix did, as its summary says it.
    """
    runs = [_ConfigRuns([], []) for _ in configs]
    outcomes = []
    for child, result in enumerate(results):
        if result is not None:
            runs[child // seeds].add(result)
        outcomes.append(_outcome(child, result))
    series: dict[str, Any] = {
        "version": SERIES_VERSION,
        "configs": [runs[index].to_json_dict(config) for index, config in enumerate(configs)],
    }
    if remedies is not None:
        series["remedies"] = remedy_summary(configs, seeds, outcomes, remedies)
    return series


def _outcome(child: int, result: Mapping[str, Any] | None) -> ChildOutcome:
    if result is None:
        return ChildOutcome(str(child), JobStatus.FAILED)
    summary = Summary.from_result(result).to_json_dict()
    return ChildOutcome(str(child), JobStatus.SUCCEEDED, summary)


def captures_gradients(specs: Sequence[ExperimentSpec]) -> bool:
    """Whether a study of these child specs will have gradients in its series."""
    return any(spec.capture.gradients for spec in specs)


def planar(specs: Sequence[ExperimentSpec]) -> bool:
    """Whether a study of these child specs will have decision surfaces (2-D data)."""
    return any(dataset_shape(spec.dataset)[1] == 2 for spec in specs)


def any_config_has(key: str) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a series has `key` (depth, flow, boundary) for at least one configuration."""

    def check(series: Mapping[str, Any]) -> bool:
        return any(config.get(key) for config in series.get("configs", []))

    return check
