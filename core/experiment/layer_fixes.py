"""The fixes of core/experiment/fixes.py for a network given as a list of Keras layers.

A merge patch replaces a list whole (RFC 7396), so each function here returns
the run's whole new `model.layers`, written as compactly as Keras' format
allows (each layer without the fields at their defaults), or None where the
fix does not apply or the list has it already:

- `recurrent_cells`: every SimpleRNN becomes an LSTM or a GRU of the same units
  (Hochreiter & Schmidhuber 1997: gates that keep the state carry the gradient
  back through time);
- `normalized`: every hidden convolution or dense layer is followed by batch
  normalization, its activation moved after the normalization (Ioffe & Szegedy
  2015), for a list of two such layers or more;
- `residual`: each hidden convolution or dense layer that keeps its input's
  shape becomes a residual block with the normalization, activation or dropout
  right after it (He et al. 2016);
- `with_activation`, `with_initializer`: another activation in the hidden
  convolutions, dense and Activation layers; another kernel initializer in
  every weighted hidden layer.

Example:
    >>> recurrent_cells(spec, "LSTM")
    [{'class_name': 'LSTM', 'config': {'units': 16}}]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from core.experiment.layer_configs import resolve_initializer
from core.experiment.layer_shapes import (
    LayerShape,
    weight_parts,
)
from core.experiment.layers import RECURRENT_CLASSES
from core.experiment.sizing import layered_shapes
from core.experiment.spec import (
    Activation,
    ExperimentSpec,
)

Layers = list[dict[str, Any]]

NORMALIZERS = frozenset({"BatchNormalization", "LayerNormalization"})
# Layers that may follow a weighted one inside its residual block: they keep its shape.
BLOCK_TAIL = frozenset({"BatchNormalization", "LayerNormalization", "Activation", "Dropout"})
WEIGHTED_FEEDFORWARD = frozenset({"Dense", "Conv1D", "Conv2D"})
# Where a layer's activation is not a hidden one to swap.
KEPT_ACTIVATIONS = frozenset({"linear", "softmax"})
DEFAULT_INITIALIZER = "glorot_uniform"  # Keras' kernel initializer, left out when it is


def _compact(layer: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = layer.model_dump(mode="json", exclude_defaults=True)
    return dumped


def _hidden(spec: ExperimentSpec) -> list[LayerShape]:
    shapes = layered_shapes(spec)
    return [] if shapes is None else shapes.hidden


def _rewritten(
    spec: ExperimentSpec, rewrite: Callable[[LayerShape], Layers | None]
) -> Layers | None:
    """The list with each hidden layer replaced by `rewrite(layer)` (None: kept as it
    is), a leading InputLayer and a pasted output layer kept; None if nothing changed."""
    layers = spec.model.layers or []
    hidden = {shape.path: shape for shape in _hidden(spec)}
    out: Layers = []
    changed = False
    for index, layer in enumerate(layers):
        shape = hidden.get(f"model.layers[{index}]")
        replacement = None if shape is None else rewrite(shape)
        changed |= replacement is not None
        out += [_compact(layer)] if replacement is None else replacement
    return out if changed else None


def _walk(shapes: list[LayerShape]) -> Iterator[LayerShape]:
    for shape in shapes:
        yield shape
        yield from _walk(list(shape.inner))


def hidden_activations(spec: ExperimentSpec) -> list[Activation]:
    """The activations of a list's hidden layers, in order (recurrent cells' included),
    as spec.Activation names; linear layers are left out."""
    found: list[Activation] = []
    for shape in _walk(_hidden(spec)):
        name = getattr(shape.layer.config, "activation", None)
        if name is not None and name.value in Activation.__members__.values():
            activation = Activation(name.value)
            if activation is not Activation.LINEAR:
                found.append(activation)
    return found


def weighted_depth(spec: ExperimentSpec) -> int:
    """Hidden layers with a kernel, those inside residual blocks included."""
    return sum(bool(weight_parts(shape.class_name)) for shape in _walk(_hidden(spec)))


def _mapped(
    spec: ExperimentSpec, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> Layers | None:
    """The list with `change` applied to each hidden layer, inside residual blocks too;
    None when it changed none."""

    def apply(layer: dict[str, Any]) -> dict[str, Any]:
        if layer["class_name"] == "Residual":
            inner = [apply(item) for item in layer["config"]["layers"]]
            return {**layer, "config": {**layer["config"], "layers": inner}}
        return change(layer)

    def rewrite(shape: LayerShape) -> Layers | None:
        before = _compact(shape.layer)
        after = apply(before)
        return None if after == before else [after]

    return _rewritten(spec, rewrite)


def timesteps_of(spec: ExperimentSpec, name: str) -> int | None:
    """The time steps the recurrent layer called `name` in results runs."""
    found = [shape.timesteps for shape in _walk(_hidden(spec)) if shape.name == name]
    return found[0] if found else None


def first_kernel_initializer(spec: ExperimentSpec) -> str:
    """The kernel initializer of the first weighted hidden layer, by kind."""
    for shape in _walk(_hidden(spec)):
        value = getattr(shape.layer.config, "kernel_initializer", None)
        if value is not None:
            return resolve_initializer(value).kind
    return DEFAULT_INITIALIZER


def recurrent_cells(spec: ExperimentSpec, cell: str) -> Layers | None:
    """Every SimpleRNN as a `cell` (LSTM or GRU) with the same settings."""

    def swap(layer: dict[str, Any]) -> dict[str, Any]:
        if layer["class_name"] == "SimpleRNN":
            return {"class_name": cell, "config": layer["config"]}
        return layer

    return _mapped(spec, swap)


def normalized(spec: ExperimentSpec) -> Layers | None:
    """Batch normalization after every hidden convolution and dense layer, before its
    activation; None when the list normalizes already or has fewer than two of them."""
    shapes = list(_walk(_hidden(spec)))
    weighted = [s for s in _hidden(spec) if s.class_name in WEIGHTED_FEEDFORWARD]
    if any(s.class_name in NORMALIZERS for s in shapes) or len(weighted) < 2:
        return None

    def norm(shape: LayerShape) -> Layers | None:
        if shape.class_name not in WEIGHTED_FEEDFORWARD:
            return None
        layer = _compact(shape.layer)
        activation = layer["config"].pop("activation", "linear")
        block = [layer, {"class_name": "BatchNormalization"}]
        if activation != "linear":
            block.append({"class_name": "Activation", "config": {"activation": activation}})
        return block

    return _rewritten(spec, norm)


def residual(spec: ExperimentSpec) -> Layers | None:
    """Each hidden convolution or dense layer that keeps its input's shape, with the
    shape-keeping layers right after it, as a residual block; None when the list has
    residual blocks already or no layer keeps its shape."""
    hidden = _hidden(spec)
    if any(shape.class_name == "Residual" for shape in hidden):
        return None
    layers = spec.model.layers or []
    paths = {shape.path: shape for shape in hidden}
    out: Layers = []
    changed = False
    index = 0
    while index < len(layers):
        shape = paths.get(f"model.layers[{index}]")
        end = index + 1
        if (
            shape is not None
            and shape.class_name in WEIGHTED_FEEDFORWARD
            and shape.input_shape == shape.output_shape
        ):
            while end < len(layers) and f"model.layers[{end}]" in paths:
                if layers[end].class_name not in BLOCK_TAIL:
                    break
                end += 1
            block = [_compact(layer) for layer in layers[index:end]]
            out.append({"class_name": "Residual", "config": {"layers": block}})
            changed = True
        else:
            out.append(_compact(layers[index]))
        index = end
    return out if changed else None


def with_activation(spec: ExperimentSpec, activation: Activation) -> Layers | None:
    """`activation` in every hidden convolution, dense and Activation layer that has one
    (recurrent cells keep theirs); None when they all have it."""

    def swap(layer: dict[str, Any]) -> dict[str, Any]:
        config = layer.get("config", {})
        current = config.get("activation", "linear")
        swappable = layer["class_name"] in WEIGHTED_FEEDFORWARD | {"Activation"}
        if swappable and current not in KEPT_ACTIVATIONS:
            return {**layer, "config": {**config, "activation": activation.value}}
        return layer

    return _mapped(spec, swap)


def with_initializer(spec: ExperimentSpec, kind: str) -> Layers | None:
    """`kind` as the kernel initializer of every weighted hidden layer; None when they
    all have it."""

    def swap(layer: dict[str, Any]) -> dict[str, Any]:
        config = layer.get("config", {})
        weighted = layer["class_name"] in WEIGHTED_FEEDFORWARD | RECURRENT_CLASSES
        if weighted and config.get("kernel_initializer", DEFAULT_INITIALIZER) != kind:
            return {**layer, "config": {**config, "kernel_initializer": kind}}
        return layer

    return _mapped(spec, swap)
