"""The changes a prescription can make to a run, each as a JSON merge patch on its spec.

A fix is one change, so a study that proves it (core/experiment/remedy_studies.py)
can credit the change alone: another activation, another initializer, batch
normalization, residual connections, gated recurrent cells, a lower learning
rate, gradient clipping. Its patch depends on the run (a learning rate ten
times lower than *this* run's) and is None where the run already has the
change or it does not apply. For a network given as a layer list, a model fix
patches the whole list (core/experiment/layer_fixes.py); the training fixes
patch any spec alike. Which fixes
a verdict calls for, in which order and with which words, is the ranking
table of core/experiment/prescriptions.py.

Example:
    >>> fix(FixId.LOWER_LEARNING_RATE).patch_for(ExperimentSpec())
    {'training': {'optimizer': {'learning_rate': 0.0001}}}
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.experiment import layer_fixes
from core.experiment.spec import Activation, ExperimentSpec, InitializerKind, OptimizerKind

# Keras' own default learning rate of each optimizer (what `learning_rate: null` trains
# with); the engine's `default_learning_rate` reads the same from Keras, and a test
# holds the two equal.
KERAS_LEARNING_RATES: dict[OptimizerKind, float] = {
    OptimizerKind.RMSPROP: 0.001,
    OptimizerKind.SGD: 0.01,
    OptimizerKind.ADAM: 0.001,
    OptimizerKind.ADAMW: 0.001,
    OptimizerKind.ADAGRAD: 0.001,
    OptimizerKind.ADADELTA: 0.001,
    OptimizerKind.ADAMAX: 0.001,
    OptimizerKind.NADAM: 0.001,
}
LEARNING_RATE_FACTOR = 10  # how much lower `lower_learning_rate` goes
CLIP_NORM = 1.0  # `clip_gradients`: each gradient tensor's norm at most this


class FixId(StrEnum):
    """The fixes a diagnosis can prescribe, by name."""

    TANH = "tanh"
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    ELU = "elu"
    BATCH_NORM = "batch_norm"
    RESIDUAL = "residual"
    GLOROT_INIT = "glorot_init"
    HE_INIT = "he_init"
    LSTM = "lstm"
    GRU = "gru"
    LOWER_LEARNING_RATE = "lower_learning_rate"
    CLIP_GRADIENTS = "clip_gradients"


Patch = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Fix:
    """One change: its name, what it does in a few words, and how to patch a spec.

    `make_patch` patches an MLP spec (or any spec, for a fix of `training`);
    `make_layers` gives a layer list's whole new `model.layers` (None: no such fix
    for a list).
    """

    id: FixId
    title: str
    make_patch: Callable[[ExperimentSpec], Patch | None]
    read_more: tuple[str, ...]  # keys of core.experiment.explanations.REFERENCES
    make_layers: Callable[[ExperimentSpec], layer_fixes.Layers | None] | None = None
    training: bool = False  # patches `training` alone, whatever the network

    def patch_for(self, spec: ExperimentSpec) -> Patch | None:
        """The merge patch that applies this fix to `spec`; None when `spec` has it already
        or it does not apply."""
        if spec.model.layers is None or self.training:
            return self.make_patch(spec)
        layers = None if self.make_layers is None else self.make_layers(spec)
        return None if layers is None else {"model": {"layers": layers}}


def hidden_activations(spec: ExperimentSpec) -> list[Activation]:
    """The activations of the hidden layers, a layer list's included (linear ones left out)."""
    if spec.model.layers is None:
        return spec.model.activations
    return layer_fixes.hidden_activations(spec)


def hidden_depth(spec: ExperimentSpec) -> int:
    """Hidden layers with a kernel."""
    if spec.model.layers is None:
        return len(spec.model.hidden_layers)
    return layer_fixes.weighted_depth(spec)


def learning_rate(spec: ExperimentSpec) -> float:
    """The learning rate `spec` trains with (its own, else its optimizer's Keras default)."""
    optimizer = spec.training.optimizer
    return optimizer.learning_rate or KERAS_LEARNING_RATES[optimizer.kind]


def lower_learning_rate(spec: ExperimentSpec) -> float:
    """`LEARNING_RATE_FACTOR` times lower than the run's, to 3 significant digits."""
    lowered = learning_rate(spec) / LEARNING_RATE_FACTOR
    return float(f"{lowered:.3g}") if math.isfinite(lowered) else lowered


def _activation(activation: Activation) -> Callable[[ExperimentSpec], Patch | None]:
    def patch(spec: ExperimentSpec) -> Patch | None:
        if all(a is activation for a in spec.model.activations):
            return None
        return {"model": {"activation": activation.value}}

    return patch


def _initializer(kind: InitializerKind) -> Callable[[ExperimentSpec], Patch | None]:
    def patch(spec: ExperimentSpec) -> Patch | None:
        if spec.model.initializer.kind is kind:
            return None
        return {"model": {"initializer": {"kind": kind.value}}}

    return patch


def _batch_norm(spec: ExperimentSpec) -> Patch | None:
    return None if spec.model.batch_norm else {"model": {"batch_norm": True}}


def _residual(spec: ExperimentSpec) -> Patch | None:
    widths = spec.model.hidden_layers
    if spec.model.residual or not any(a == b for a, b in itertools.pairwise(widths)):
        return None  # on already, or no two consecutive layers a shortcut can join
    return {"model": {"residual": True}}


def _not_for_an_mlp(spec: ExperimentSpec) -> Patch | None:
    return None


def _lower_learning_rate(spec: ExperimentSpec) -> Patch | None:
    return {"training": {"optimizer": {"learning_rate": lower_learning_rate(spec)}}}


def _clip_gradients(spec: ExperimentSpec) -> Patch | None:
    clipnorm = spec.training.clipnorm
    if clipnorm is not None and clipnorm <= CLIP_NORM:
        return None
    patch: Patch = {"clipnorm": CLIP_NORM}
    if spec.training.clipvalue is not None:
        patch["clipvalue"] = None  # a spec clips one way at most
    return {"training": patch}


def _activation_fix(fix_id: FixId, activation: Activation, reference: str) -> Fix:
    return Fix(
        fix_id,
        f"{activation.value.replace('_', ' ')} in the hidden layers",
        _activation(activation),
        (reference,),
        make_layers=functools.partial(layer_fixes.with_activation, activation=activation),
    )


def _initializer_fix(fix_id: FixId, kind: InitializerKind, title: str, reference: str) -> Fix:
    return Fix(
        fix_id,
        title,
        _initializer(kind),
        (reference,),
        make_layers=functools.partial(layer_fixes.with_initializer, kind=kind.value),
    )


def _cell_fix(fix_id: FixId, cell: str, reference: str) -> Fix:
    return Fix(
        fix_id,
        f"{cell} cells instead of SimpleRNN",
        _not_for_an_mlp,
        (reference,),
        make_layers=functools.partial(layer_fixes.recurrent_cells, cell=cell),
    )


FIXES: tuple[Fix, ...] = (
    _activation_fix(FixId.TANH, Activation.TANH, "glorot2010"),
    _activation_fix(FixId.RELU, Activation.RELU, "he2015"),
    _activation_fix(FixId.LEAKY_RELU, Activation.LEAKY_RELU, "maas2013"),
    _activation_fix(FixId.ELU, Activation.ELU, "clevert2016"),
    Fix(
        FixId.BATCH_NORM,
        "batch normalization",
        _batch_norm,
        ("ioffe2015",),
        make_layers=layer_fixes.normalized,
    ),
    Fix(
        FixId.RESIDUAL,
        "residual connections",
        _residual,
        ("he2016",),
        make_layers=layer_fixes.residual,
    ),
    _initializer_fix(
        FixId.GLOROT_INIT,
        InitializerKind.GLOROT_UNIFORM,
        "Glorot uniform initialization",
        "glorot2010",
    ),
    _initializer_fix(
        FixId.HE_INIT, InitializerKind.HE_NORMAL, "He normal initialization", "he2015"
    ),
    _cell_fix(FixId.LSTM, "LSTM", "hochreiter1997"),
    _cell_fix(FixId.GRU, "GRU", "pascanu2013"),
    Fix(
        FixId.LOWER_LEARNING_RATE,
        f"a learning rate {LEARNING_RATE_FACTOR} times lower",
        _lower_learning_rate,
        ("pascanu2013",),
        training=True,
    ),
    Fix(
        FixId.CLIP_GRADIENTS,
        f"gradient clipping (norm {CLIP_NORM:g})",
        _clip_gradients,
        ("pascanu2013",),
        training=True,
    ),
)

_BY_ID = {item.id: item for item in FIXES}


def fix(fix_id: FixId) -> Fix:
    """The fix called `fix_id`."""
    return _BY_ID[fix_id]
