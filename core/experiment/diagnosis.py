"""Verdicts on a run, each with the numbers behind it.

Reads only the result's stored series, so it runs anywhere (no TensorFlow).
Several verdicts may apply at once; `healthy` means none did.

Thresholds (module constants, reported with every diagnosis):
- `vanishing`: the first hidden layer's RMS kernel gradient is under
  `VANISHING_RATIO` (1/10) of the output layer's, as a median over the
  run's capture points: the earliest layers barely learn. On the tutorial's
  circles its 2-5-5-5-5-1 sigmoid net with N(0, 1) weights gives 0.009 to 0.02
  over seeds, tanh 6 to 13, ten sigmoid layers of 8 under 1e-3.
- `exploding`: that ratio is over `EXPLODING_RATIO` (1000), or some layer's
  kernel gradient norm exceeds `EXPLODING_NORM`, or the run diverged with
  gradients past that norm.
- `dead_units`: some relu layer ends with at least `DEAD_FRACTION` of its
  units at or below zero on every sample measured (the probe's at epoch
  points, each step's batch at step points: core/experiment/result.py): they
  pass no gradient, so they never recover. The rest of the ReLU family
  (leaky_relu, elu, selu, gelu, swish) still passes a gradient below zero;
  the same fraction of such layers is reported as evidence
  (`negative_units`), never as a verdict.
- `saturated`: some sigmoid/tanh/softsign layer spends the last tenth of the
  run with at least `SATURATED_FRACTION` of its activations where the slope
  is under a tenth of its maximum.
- `diverged`: the loss, a weight or a gradient stopped being finite.
- `vanishing_through_time`: some recurrent layer's gradient with respect to
  its first hidden state is under `VANISHING_TIME_RATIO` (1/100) of that
  with respect to its last, ||dL/dh_1|| / ||dL/dh_T||, as a median over the
  run's capture points: what the layer saw early in a sequence barely moves
  its weights (Bengio, Simard & Frasconi 1994).
- `exploding_through_time`: that ratio is over `EXPLODING_TIME_RATIO` (100):
  the gradient grows going back in time.

For a layer list, "first" and "output" are the first and the last layer with
a kernel (a convolution or a dense layer), leaving recurrent layers out of the
depth ratio: a recurrent layer's input kernel gets the sum over its time steps,
so its gradient shrinks with the distance back in time (and with inputs that
come early and sparsely, as a recall task's single symbol) as well as with
depth; the through-time verdicts judge that. One GRU or LSTM of 16 units
recalling a symbol 10 steps back learns it perfectly (accuracy 1.0, seeds 1
and 2) with an input kernel gradient 1/22 (GRU) to 1/67 (LSTM) of the output
layer's, and a through-time ratio of 0.04 to 0.14. A network whose layers
before the output are all recurrent has no depth ratio: `vanishing` is then
not judged (`evidence.not_judged` says why), `exploding` only by the norm.

A verdict whose numbers were not captured (`capture.gradients` or
`capture.activations` off) is not given either way: `evidence.not_judged`
names it and says why, e.g. `{"vanishing": "gradients were not captured"}`.
`diverged` needs only the loss, so it is always judged.

RMS (norm / sqrt(size)) rather than the norm compares layers of different
sizes fairly: a 2x5 kernel and a 5x1 kernel have different norms for the same
per-weight gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

VANISHING_RATIO = 1e-1
EXPLODING_RATIO = 1e3
EXPLODING_NORM = 1e3
DEAD_FRACTION = 0.5
SATURATED_FRACTION = 0.5
FINAL_SHARE = 0.1  # the share of capture points that counts as "the end"
VANISHING_TIME_RATIO = 1e-2
EXPLODING_TIME_RATIO = 1e2

NO_GRADIENTS = "gradients were not captured"
NO_ACTIVATIONS = "activations were not captured"
NO_DEPTH = (
    "the layers before the output are all recurrent: their gradient through time is "
    "judged by vanishing_through_time"
)

THRESHOLDS = {
    "vanishing_ratio": VANISHING_RATIO,
    "exploding_ratio": EXPLODING_RATIO,
    "exploding_norm": EXPLODING_NORM,
    "dead_fraction": DEAD_FRACTION,
    "saturated_fraction": SATURATED_FRACTION,
    "vanishing_time_ratio": VANISHING_TIME_RATIO,
    "exploding_time_ratio": EXPLODING_TIME_RATIO,
}


def diagnose(result: Mapping[str, Any]) -> dict[str, Any]:
    """Verdicts, evidence and thresholds for a result laid out as in core/experiment/result.py."""
    series: Mapping[str, Any] = result["series"]
    sizes = {layer["name"]: layer for layer in result["layers"]}
    verdicts: list[str] = []
    evidence: dict[str, Any] = {}

    diverged = _divergence(result)
    if diverged is not None:
        verdicts.append("diverged")
        evidence["diverged"] = diverged

    not_judged: dict[str, str] = {}
    flow = _gradient_flow(series, sizes)
    evidence["gradient_flow"] = flow
    if not _has_gradients(series):
        not_judged |= {"vanishing": NO_GRADIENTS, "exploding": NO_GRADIENTS}
    else:
        ratio = flow["first_to_last_rms_ratio"]
        if flow["first_layer"] is None:
            not_judged["vanishing"] = NO_DEPTH
        if ratio is not None and ratio < VANISHING_RATIO:
            verdicts.append("vanishing")
        if (
            (ratio is not None and ratio > EXPLODING_RATIO)
            or (flow["max_grad_norm"] is not None and flow["max_grad_norm"] > EXPLODING_NORM)
            or (diverged is not None and diverged["gradients_blew_up"])
        ):
            verdicts.append("exploding")

    verdicts += _through_time_verdicts(result, evidence, not_judged)
    if not _has_activations(series):
        not_judged |= {"dead_units": NO_ACTIVATIONS, "saturated": NO_ACTIVATIONS}
    else:
        verdicts += _activation_verdicts(series, evidence)
    evidence["not_judged"] = not_judged

    return {"verdicts": verdicts or ["healthy"], "evidence": evidence, "thresholds": THRESHOLDS}


def _through_time_verdicts(
    result: Mapping[str, Any], evidence: dict[str, Any], not_judged: dict[str, str]
) -> list[str]:
    """`vanishing_through_time` and `exploding_through_time`, from each recurrent
    layer's median ||dL/dh_1|| / ||dL/dh_T||, added to `evidence["through_time"]`."""
    recurrent = [layer["name"] for layer in result["layers"] if layer.get("timesteps")]
    if not recurrent:
        return []
    through = result.get("through_time") or {}
    if not through:
        reason = NO_GRADIENTS
        not_judged |= {"vanishing_through_time": reason, "exploding_through_time": reason}
        return []
    ratios: dict[str, float | None] = {}
    for name in recurrent:
        # a first norm of 0 (underflow) is a ratio of 0; an undefined one is left out
        rows = [
            row for row in through[name]["gradient_norm"] if row and row[0] is not None and row[-1]
        ]
        ratios[name] = float(np.median([row[0] / row[-1] for row in rows])) if rows else None
    evidence["through_time"] = {"first_to_last_ratio": ratios}
    judged = [ratio for ratio in ratios.values() if ratio is not None]
    verdicts = []
    if any(ratio < VANISHING_TIME_RATIO for ratio in judged):
        verdicts.append("vanishing_through_time")
    if any(ratio > EXPLODING_TIME_RATIO for ratio in judged):
        verdicts.append("exploding_through_time")
    return verdicts


def _has_gradients(series: Mapping[str, Any]) -> bool:
    return any(_stat(layer, "kernel", "grad_norm") is not None for layer in series.values())


def _has_activations(series: Mapping[str, Any]) -> bool:
    return any(isinstance(layer.get("activation"), Mapping) for layer in series.values())


def _stat(layer: Mapping[str, Any], part: str, stat: str) -> Sequence[float | None] | None:
    """A layer's series of `stat` for `part`, None where it was not captured."""
    values: Sequence[float | None] | None = (layer.get(part) or {}).get(stat)
    return values


def _activation_verdicts(series: Mapping[str, Any], evidence: dict[str, Any]) -> list[str]:
    """`dead_units` and `saturated`, with their fractions added to `evidence`."""
    verdicts = []
    dead = _final_fractions(series, "dead")
    if dead:
        evidence["dead_units"] = dead
        if max(dead.values()) >= DEAD_FRACTION:
            verdicts.append("dead_units")
    negative = _final_fractions(series, "negative")
    if negative:
        evidence["negative_units"] = negative
    saturated = _final_fractions(series, "saturated")
    if saturated:
        evidence["saturated"] = saturated
        if max(saturated.values()) >= SATURATED_FRACTION:
            verdicts.append("saturated")
    return verdicts


def _finite(values: Sequence[float | None] | None) -> np.ndarray:
    array = np.array([np.nan if v is None else v for v in values or []], dtype=np.float64)
    return array[np.isfinite(array)]


def _divergence(result: Mapping[str, Any]) -> dict[str, Any] | None:
    losses = result["history"].get("loss", [])
    bad_loss = [i + 1 for i, value in enumerate(losses) if value is None]
    # Whichever of weights and gradients were captured; the loss alone suffices.
    bad_tensors = sorted(
        name
        for name, layer in result["series"].items()
        for part in layer
        if part != "activation"
        for stat in ("weight_norm", "grad_norm")
        if None in (_stat(layer, part, stat) or [])
    )
    if not bad_loss and not bad_tensors:
        return None
    sizes = [
        _finite(_stat(layer, "kernel", stat))
        for layer in result["series"].values()
        for stat in ("grad_norm", "grad_max_abs")
    ]
    largest = max((float(n.max()) for n in sizes if n.size), default=None)
    blew_up = largest is not None and largest > EXPLODING_NORM
    return {
        "first_non_finite_epoch": bad_loss[0] if bad_loss else None,
        "layers_with_non_finite_values": sorted(set(bad_tensors)),
        "largest_finite_gradient": largest,
        # unknown (null) when gradients were not captured
        "gradients_blew_up": blew_up if _has_gradients(result["series"]) else None,
    }


def _gradient_flow(series: Mapping[str, Any], layers: Mapping[str, Any]) -> dict[str, Any]:
    """Median RMS kernel gradient per layer and the first-to-last ratio (the first
    layer not recurrent; None, and no ratio, when every layer before the last is)."""
    rms: dict[str, float | None] = {}
    max_norm = 0.0
    for name, layer in series.items():
        finite = _finite(_stat(layer, "kernel", "grad_norm"))
        kernel_size = _kernel_size(layers[name])
        rms[name] = float(np.median(finite) / math.sqrt(kernel_size)) if finite.size else None
        if finite.size:
            max_norm = max(max_norm, float(finite.max()))
    names = [name for name in series if _stat(series[name], "kernel", "grad_norm") is not None]
    names = names or list(series)
    deep = [name for name in names[:-1] if not layers[name].get("timesteps")]
    first_layer = deep[0] if deep else None
    first = None if first_layer is None else rms[first_layer]
    last = rms[names[-1]]
    ratio = first / last if first is not None and last else None
    return {
        "median_rms_grad": rms,
        "first_layer": first_layer,
        "first_to_last_rms_ratio": ratio,
        "max_grad_norm": max_norm if any(v is not None for v in rms.values()) else None,
    }


def _kernel_size(layer: Mapping[str, Any]) -> int:
    if layer.get("kernel_size"):
        return int(layer["kernel_size"])
    # a version 1 result's dense layer: parameters = (fan_in + 1) * units
    return max(1, int(layer["parameters"]) - int(layer["units"]))


def _final_fractions(series: Mapping[str, Any], stat: str) -> dict[str, float]:
    """Per layer, the mean of `stat` over the last tenth of the capture points."""
    out: dict[str, float] = {}
    for name, layer in series.items():
        values = (layer.get("activation") or {}).get(stat)
        if values is None:
            continue
        tail = max(1, math.ceil(len(values) * FINAL_SHARE))
        finite = _finite(values[-tail:])
        if finite.size:
            out[name] = round(float(finite.mean()), 4)
    return out
