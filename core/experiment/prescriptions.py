"""From verdict to cure: the fixes each verdict calls for, ranked, in words that cite the run.

The ranking and the wording are data, in `RANKINGS`: per verdict, the
remedies in the textbook's order, each a fix (core/experiment/fixes.py), the
hidden activations it is meant for, why it should help and what to expect.
`{name}` fields are filled from the run's own evidence (`run_facts`), so a
rationale reads "the first hidden layer's gradient is 1/62 of the output
layer's: sigmoid's slope is at most 1/4, ...".

The order is then corrected by measurement. Where the fix was proven on a
network with the same hidden activation and the same verdict
(core/experiment/measured_remedies.py, written from benchmarks/remedies.py),
its support is `helps`, `partly` or `does_not_help`; elsewhere `untested`.
Ranks sort by support (helps, partly, untested, does_not_help), then by the
table's order: a textbook fix that did not help on such a network (Glorot
initialization on the tutorial's sigmoid network) comes last, and says so.

A healthy run prescribes nothing; a fix the run already has, or whose patched
spec would break a limit, is left out.

Example:
    >>> prescribe(spec, diagnosis)["vanishing"][0]["fix"]
    'tanh'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from core.experiment import layer_fixes
from core.experiment.diagnosis import EXPLODING_NORM, VANISHING_RATIO
from core.experiment.explanations import REFERENCES, explain
from core.experiment.fixes import (
    CLIP_NORM,
    FixId,
    fix,
    hidden_activations,
    hidden_depth,
    learning_rate,
    lower_learning_rate,
)
from core.experiment.measured_remedies import MEASURED, Measurement
from core.experiment.merge_patch import merge_patch
from core.experiment.spec import (
    BOUNDED_ACTIVATIONS,
    RELU_FAMILY,
    Activation,
    ExperimentSpec,
    InitializerKind,
)

# A measured fix `helps` when it cleared the verdict in at least this share of the seeds
# without lowering the accuracy by more than `ACCURACY_TOLERANCE`; it helps `partly` when it
# cleared it in some seed, or raised the accuracy by at least `ACCURACY_GAIN` on average.
CLEARED_SHARE = 0.8
ACCURACY_TOLERANCE = 0.01
ACCURACY_GAIN = 0.05


class Support(StrEnum):
    """What the measurements say of a fix on a network like the run's."""

    HELPS = "helps"
    PARTLY = "partly"
    UNTESTED = "untested"
    DOES_NOT_HELP = "does_not_help"


SUPPORT_ORDER = (Support.HELPS, Support.PARTLY, Support.UNTESTED, Support.DOES_NOT_HELP)

ALL_ACTIVATIONS = frozenset(Activation)
NOT_RELU_FAMILY = ALL_ACTIVATIONS - RELU_FAMILY


@dataclass(frozen=True, slots=True)
class Remedy:
    """One line of a verdict's ranking: a fix, the activations it is for, its words.

    `because` finishes the verdict's finding into the rationale; `expected` is the
    effect to look for. Both may use any field of `run_facts`.
    """

    fix: FixId
    because: str
    expected: str
    only_for: frozenset[Activation] = ALL_ACTIVATIONS  # some hidden layer has one of these


# How each verdict's rationale opens: what the run showed, in its own numbers.
FINDINGS: dict[str, str] = {
    "vanishing": "the first hidden layer's gradient is {ratio_fraction} of the output "
    "layer's: {slope_note}",
    "exploding": "a kernel gradient's norm reached {max_grad_norm} (the line is "
    "{exploding_norm}) with {initializer} weights and a learning rate of {learning_rate}",
    "dead_units": "{dead_percent} of {dead_layer}'s units output zero on every sample measured, "
    "so no gradient passes through them",
    "saturated": "{saturated_percent} of {saturated_layer}'s activations sit where "
    "{activation}'s slope is under a tenth of its maximum",
    "diverged": "the loss stopped being finite in epoch {diverged_epoch}, with gradients up "
    "to {largest_gradient}",
    "vanishing_through_time": "{time_low_layer}'s gradient with respect to its first hidden "
    "state is {time_low_ratio} of that with respect to its last, {time_low_steps} steps later",
    "exploding_through_time": "{time_high_layer}'s gradient with respect to its first hidden "
    "state is {time_high_ratio} that with respect to its last, {time_high_steps} steps later",
}

# Why an activation lets the gradient shrink, for the `slope_note` of a vanishing finding.
SLOPE_NOTES: dict[Activation, str] = {
    Activation.SIGMOID: "sigmoid's slope is at most 1/4, so {layers} sigmoid layers can "
    "shrink it up to 4^{layers} = {sigmoid_shrink} times",
    Activation.TANH: "tanh's slope falls from 1 toward 0 as its units saturate",
    Activation.SOFTSIGN: "softsign's slope falls from 1 toward 0 as its units saturate",
    Activation.RELU: "relu passes nothing back through a unit that is off",
}
DEFAULT_SLOPE_NOTE = "each layer's weights and {activation}'s slope scale it on the way back"

_SCALED_INIT_BECAUSE = (
    "{scaled_init} draws each kernel to the scale of its fan-in, so the signal, and with it "
    "the gradient, keeps one size from layer to layer"
)

RANKINGS: dict[str, tuple[Remedy, ...]] = {
    "vanishing": (
        Remedy(
            FixId.TANH,
            "tanh's slope is 1 at zero, four times sigmoid's steepest, and its outputs are "
            "centred on zero",
            "the first layers get a gradient within a tenth of the output layer's and learn; "
            "{learns}",
            only_for=frozenset({Activation.SIGMOID}),
        ),
        Remedy(
            FixId.BATCH_NORM,
            "batch normalization recentres each layer's pre-activations where {activation}'s "
            "slope is steepest, whatever the weights' scale",
            "the gradient reaches the first layers and {learns}; each hidden unit "
            "gains a scale and a shift to learn, and a step costs a little more",
        ),
        Remedy(
            FixId.RELU,
            "relu's slope is 1 wherever a unit is on",
            "the gradient reaches the first layers and {learns}; with weights as large "
            "as {initializer} some relu units may end dead, which he_init helps with",
            only_for=BOUNDED_ACTIVATIONS,
        ),
        Remedy(
            FixId.HE_INIT,
            "He initialization gives each kernel the variance 2/fan_in that keeps a relu "
            "network's gradient at one scale from layer to layer",
            "the first layers' gradient comes within a tenth of the output layer's",
            only_for=RELU_FAMILY,
        ),
        Remedy(
            FixId.RESIDUAL,
            "identity shortcuts around layers that keep their input's shape carry the "
            "gradient back past the {activation} slopes",
            "more of the gradient reaches the first layers; on a network this narrow the "
            "ratio rises, not always past the verdict's line",
        ),
        Remedy(
            FixId.GLOROT_INIT,
            "Glorot initialization scales each kernel to its fan-in and fan-out so that the "
            "gradient keeps its size from layer to layer, for activations centred on zero",
            "the gradient keeps its size across tanh-like layers; sigmoid's outputs average "
            "1/2, not 0, which the argument assumes, so a sigmoid network may not gain",
        ),
    ),
    "exploding": (
        Remedy(
            FixId.HE_INIT,
            _SCALED_INIT_BECAUSE,
            "gradients of an ordinary size from the first step, when the initial weights' "
            "scale made them large",
            only_for=RELU_FAMILY,
        ),
        Remedy(
            FixId.GLOROT_INIT,
            _SCALED_INIT_BECAUSE,
            "gradients of an ordinary size from the first step, when the initial weights' "
            "scale made them large",
            only_for=NOT_RELU_FAMILY,
        ),
        Remedy(
            FixId.LOWER_LEARNING_RATE,
            "a learning rate of {lower_learning_rate} makes every step {lr_factor} times "
            "shorter, so a large gradient cannot throw the weights as far",
            "no blow-up when the steps, not the initial weights, made the gradients grow; "
            "gradients large from the first step stay large",
        ),
        Remedy(
            FixId.CLIP_GRADIENTS,
            "clipping each gradient tensor to norm {clip_norm} bounds every step and keeps "
            "its direction",
            "bounded steps, so one bad batch cannot throw the weights; the gradients "
            "themselves, which the verdict measures before clipping, stay as large",
        ),
    ),
    "dead_units": (
        Remedy(
            FixId.LEAKY_RELU,
            "leaky relu keeps a slope of 0.2 below zero, so a unit pushed there still "
            "learns its way back",
            "no layer ends mostly dead, and the units the run lost work again",
            only_for=frozenset({Activation.RELU}),
        ),
        Remedy(
            FixId.ELU,
            "elu's slope below zero shrinks smoothly but never reaches zero, so a unit "
            "pushed there still learns",
            "no layer ends mostly dead, and the units the run lost work again",
            only_for=frozenset({Activation.RELU}),
        ),
        Remedy(
            FixId.LOWER_LEARNING_RATE,
            "at a learning rate of {lower_learning_rate} instead of {learning_rate} one step "
            "is less likely to push a unit below zero for every input",
            "fewer units die; the run may need more epochs to get as far",
            only_for=frozenset({Activation.RELU}),
        ),
        Remedy(
            FixId.HE_INIT,
            "He initialization starts every relu layer at the variance 2/fan_in, so fewer "
            "units start, or are pushed, off",
            "fewer dead units at the start; a learning rate that kills units goes on killing them",
            only_for=frozenset({Activation.RELU}),
        ),
    ),
    "saturated": (
        Remedy(
            FixId.BATCH_NORM,
            "batch normalization recentres each layer's pre-activations on the steep part "
            "of {activation}",
            "the layers leave the flat tails and pass a gradient again",
        ),
        Remedy(
            FixId.GLOROT_INIT,
            "Glorot initialization draws weights scaled to the fan-in and fan-out, smaller "
            "than {initializer} here, keeping pre-activations near zero at the start",
            "fewer saturated units, when the initial weights' scale put them there",
        ),
        Remedy(
            FixId.LOWER_LEARNING_RATE,
            "at a learning rate of {lower_learning_rate} instead of {learning_rate} the "
            "weights grow more slowly toward the tails",
            "fewer saturated units at the end, when training drove the weights large",
        ),
        Remedy(
            FixId.RELU,
            "relu has no flat tail above zero",
            "no saturation; watch for dead units instead",
            only_for=BOUNDED_ACTIVATIONS,
        ),
    ),
    "diverged": (
        Remedy(
            FixId.LOWER_LEARNING_RATE,
            "a learning rate of {lower_learning_rate} makes every step {lr_factor} times shorter",
            "the loss stays finite when the steps were too long",
        ),
        Remedy(
            FixId.CLIP_GRADIENTS,
            "clipping each gradient tensor to norm {clip_norm} bounds every step",
            "the loss stays finite when single large gradients threw the weights",
        ),
        Remedy(
            FixId.HE_INIT,
            _SCALED_INIT_BECAUSE,
            "the loss stays finite when the initial weights' scale made the gradients huge",
            only_for=RELU_FAMILY,
        ),
        Remedy(
            FixId.GLOROT_INIT,
            _SCALED_INIT_BECAUSE,
            "the loss stays finite when the initial weights' scale made the gradients huge",
            only_for=NOT_RELU_FAMILY,
        ),
    ),
    "vanishing_through_time": (
        Remedy(
            FixId.LSTM,
            "an LSTM's cell state carries the gradient back a step scaled by a forget gate "
            "it learns (and starts near open), not by the recurrent weights and tanh's slope",
            "the gradient with respect to the early hidden states stays within a hundredth "
            "of the last's, so what a sequence showed early can be learned",
        ),
        Remedy(
            FixId.GRU,
            "a GRU's update gate lets its state pass a step unchanged, so the gradient goes "
            "back through time without the product of the recurrent weights",
            "the gradient with respect to the early hidden states stays within a hundredth "
            "of the last's, with a quarter fewer weights than an LSTM",
        ),
    ),
    "exploding_through_time": (
        Remedy(
            FixId.CLIP_GRADIENTS,
            "clipping each gradient tensor to norm {clip_norm} bounds every step however "
            "large the product over the time steps grows (Pascanu et al. 2013)",
            "bounded steps, so one long sequence cannot throw the weights; the through-time "
            "ratio, which the verdict measures before clipping, may stay as large",
        ),
        Remedy(
            FixId.LOWER_LEARNING_RATE,
            "a learning rate of {lower_learning_rate} makes every step {lr_factor} times "
            "shorter, so the recurrent weights grow more slowly past the point where the "
            "product over time steps explodes",
            "no blow-up when training, not the initial weights, grew the recurrent weights",
        ),
        Remedy(
            FixId.LSTM,
            "an LSTM's gates bound what each step adds to its cell state, where a SimpleRNN "
            "multiplies by its recurrent weights at every step",
            "a through-time ratio near one or below; a step costs about four times as much",
        ),
        Remedy(
            FixId.GRU,
            "a GRU's gates mix its state with the new one instead of multiplying it by the "
            "recurrent weights at every step",
            "a through-time ratio near one or below; a step costs about three times as much",
        ),
    ),
}


# ------------------------------------------------------------------------ the facts


def run_facts(spec: ExperimentSpec, diagnosis: Mapping[str, Any]) -> dict[str, str]:
    """Every field a rationale may use, as text, from the run's spec and evidence."""
    evidence: Mapping[str, Any] = diagnosis.get("evidence") or {}
    flow: Mapping[str, Any] = evidence.get("gradient_flow") or {}
    activations = _unique(hidden_activations(spec))
    layers = hidden_depth(spec)
    facts = {
        "activation": "/".join(a.value for a in activations) or "linear",
        "layers": str(layers),
        "sigmoid_shrink": f"{4**layers:,}",
        "ratio": _number(flow.get("first_to_last_rms_ratio")),
        "ratio_fraction": _fraction(flow.get("first_to_last_rms_ratio")),
        "max_grad_norm": _number(flow.get("max_grad_norm")),
        "vanishing_ratio": _fraction(VANISHING_RATIO),
        "exploding_norm": _number(EXPLODING_NORM),
        "initializer": _initializer(spec),
        "scaled_init": _scaled_init(spec),
        "learning_rate": f"{learning_rate(spec):g}",
        "lower_learning_rate": f"{lower_learning_rate(spec):g}",
        "lr_factor": f"{learning_rate(spec) / lower_learning_rate(spec):.3g}",
        "clip_norm": f"{CLIP_NORM:g}",
        # What learning shows: a regression has no accuracy, only a loss and its baseline.
        "learns": "the loss falls well under its baseline"
        if spec.dataset.regression
        else "accuracy rises",
        **_worst(evidence.get("dead_units"), "dead"),
        **_worst(evidence.get("saturated"), "saturated"),
        **_divergence(evidence.get("diverged")),
        **_through_time(spec, evidence.get("through_time")),
    }
    note = SLOPE_NOTES.get(activations[0], DEFAULT_SLOPE_NOTE) if len(activations) == 1 else None
    facts["slope_note"] = (note or DEFAULT_SLOPE_NOTE).format(**facts)
    return facts


def _unique(activations: Iterable[Activation]) -> list[Activation]:
    return list(dict.fromkeys(activations))


def _number(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "unknown"
    if 1 <= abs(value) < 1e6:
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{value:.2g}"


def _fraction(ratio: Any) -> str:
    """`1/62` for a ratio under one, `3.2 times` over it."""
    if not isinstance(ratio, int | float) or not math.isfinite(ratio) or ratio <= 0:
        return "unknown"
    if ratio < 1:
        return f"1/{_number(1 / ratio)}"
    return f"{_number(ratio)} times"


def _initializer(spec: ExperimentSpec) -> str:
    if spec.model.layers is not None:
        return layer_fixes.first_kernel_initializer(spec)
    init = spec.model.initializer
    if init.kind is InitializerKind.RANDOM_NORMAL:
        return f"N({init.mean:g}, {init.stddev:g})"
    if init.kind is InitializerKind.TRUNCATED_NORMAL:
        return f"truncated N({init.mean:g}, {init.stddev:g})"
    if init.kind is InitializerKind.RANDOM_UNIFORM:
        return f"U({init.minval:g}, {init.maxval:g})"
    return init.kind.value


def _scaled_init(spec: ExperimentSpec) -> str:
    relu_like = any(a in RELU_FAMILY for a in hidden_activations(spec))
    return "He initialization (variance 2/fan_in)" if relu_like else "Glorot initialization"


def _worst(fractions: Any, name: str) -> dict[str, str]:
    """The layer with the largest fraction of `name` units, and that fraction."""
    if not isinstance(fractions, Mapping) or not fractions:
        return {f"{name}_layer": "a layer", f"{name}_percent": "most"}
    layer = max(fractions, key=lambda key: fractions[key])
    return {f"{name}_layer": str(layer), f"{name}_percent": f"{100 * fractions[layer]:.0f}%"}


def _through_time(spec: ExperimentSpec, through: Any) -> dict[str, str]:
    """The recurrent layers with the lowest and the highest first-to-last ratio."""
    ratios = (through or {}).get("first_to_last_ratio") if isinstance(through, Mapping) else None
    judged = {k: v for k, v in (ratios or {}).items() if isinstance(v, int | float)}
    facts: dict[str, str] = {}
    for end, pick in (("low", min), ("high", max)):
        layer = pick(judged, key=lambda key: judged[key]) if judged else None
        steps = None if layer is None else layer_fixes.timesteps_of(spec, layer)
        facts |= {
            f"time_{end}_layer": layer or "a recurrent layer",
            f"time_{end}_ratio": "a vanishing fraction (0 in float32)"
            if judged.get(layer or "") == 0
            else _fraction(judged.get(layer or "")),
            f"time_{end}_steps": "several" if not steps else f"{steps - 1}",
        }
    return facts


def _divergence(diverged: Any) -> dict[str, str]:
    if not isinstance(diverged, Mapping):
        return {"diverged_epoch": "unknown", "largest_gradient": "unknown"}
    epoch = diverged.get("first_non_finite_epoch")
    return {
        "diverged_epoch": "unknown" if epoch is None else str(epoch),
        "largest_gradient": _number(diverged.get("largest_finite_gradient")),
    }


# --------------------------------------------------------------------- the support


def support_of(measurement: Measurement | None) -> Support:
    """What a measurement on a network like the run's says of the fix."""
    if measurement is None:
        return Support.UNTESTED
    share = measurement.cleared / measurement.had if measurement.had else 0.0
    gain = measurement.accuracy_change
    if share >= CLEARED_SHARE and (gain is None or gain >= -ACCURACY_TOLERANCE):
        return Support.HELPS
    if measurement.cleared > 0 or (gain is not None and gain >= ACCURACY_GAIN):
        return Support.PARTLY
    return Support.DOES_NOT_HELP


def measurement_for(
    verdict: str, fix_id: FixId, activations: Iterable[Activation]
) -> Measurement | None:
    """The measurement of `fix_id` against `verdict` on a network of these activations
    alone (its hidden layers all one activation, as the measured networks' are)."""
    kinds = set(activations)
    if len(kinds) != 1:
        return None
    (activation,) = kinds
    for measurement in MEASURED:
        if (measurement.verdict, measurement.fix, measurement.activation) == (
            verdict,
            fix_id,
            activation,
        ):
            return measurement
    return None


# ---------------------------------------------------------------------- prescribing


def prescribe(
    spec: ExperimentSpec, diagnosis: Mapping[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """verdict -> its ranked fixes (see the module docstring); `{}` for a healthy run."""
    facts = run_facts(spec, diagnosis)
    original = spec.model_dump(mode="json")
    prescriptions: dict[str, list[dict[str, Any]]] = {}
    for verdict in diagnosis.get("verdicts", []):
        ranked = _ranked(verdict, spec, original, facts)
        if ranked:
            prescriptions[verdict] = ranked
    return prescriptions


def advise(spec: ExperimentSpec, diagnosis: Mapping[str, Any]) -> dict[str, Any]:
    """`diagnosis` with its `prescriptions` and the `explanations` of its verdicts."""
    return {
        **diagnosis,
        "prescriptions": prescribe(spec, diagnosis),
        "explanations": explain(diagnosis.get("verdicts", [])),
    }


def _ranked(
    verdict: str, spec: ExperimentSpec, original: dict[str, Any], facts: Mapping[str, str]
) -> list[dict[str, Any]]:
    activations = hidden_activations(spec)
    candidates = []
    for position, remedy in enumerate(RANKINGS.get(verdict, ())):
        if not remedy.only_for.intersection(activations):
            continue
        patch = fix(remedy.fix).patch_for(spec)
        if patch is None or _breaks_a_limit(merge_patch(original, patch)):
            continue
        # Measured on the tutorial's MLP, a classification: a layer list of the same
        # activation is not that network, nor is an MLP fitting a regression.
        like_measured = spec.model.layers is None and not spec.dataset.regression
        measurement = measurement_for(verdict, remedy.fix, activations) if like_measured else None
        support = support_of(measurement)
        candidates.append((SUPPORT_ORDER.index(support), position, remedy, patch, measurement))
    candidates.sort(key=lambda item: item[:2])
    return [
        _prescription(rank, verdict, remedy, patch, measurement, facts)
        for rank, (_, _, remedy, patch, measurement) in enumerate(candidates, start=1)
    ]


def _prescription(
    rank: int,
    verdict: str,
    remedy: Remedy,
    patch: dict[str, Any],
    measurement: Measurement | None,
    facts: Mapping[str, str],
) -> dict[str, Any]:
    finding = FINDINGS[verdict].format(**facts)
    because = remedy.because.format(**facts)
    chosen = fix(remedy.fix)
    return {
        "fix": remedy.fix.value,
        "rank": rank,
        "title": chosen.title,
        "patch": patch,
        "rationale": _sentence(f"{finding}; {because}"),
        "expected": _sentence(remedy.expected.format(**facts)),
        "support": support_of(measurement).value,
        "measured": None if measurement is None else measurement.to_json_dict(),
        "read_more": [REFERENCES[key].to_json_dict() for key in chosen.read_more],
    }


def _breaks_a_limit(patched: dict[str, Any]) -> bool:
    """Whether a patched spec is refused (a fix can push a network past a limit)."""
    try:
        ExperimentSpec.model_validate(patched)
    except ValidationError:
        return True
    return False


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
