"""A layer list's shapes, known without TensorFlow.

`infer_shapes` walks the list from the data's shape, refusing a layer that cannot
take its input, and counts each layer's parameters and floating-point
operations, which bound a job (core/experiment/sizing.py `check_limits`).

Example:
    >>> from core.experiment.layers import LAYER_LIST
    >>> layers = LAYER_LIST.validate_python([{"class_name": "LSTM", "config": {"units": 8}}])
    >>> infer_shapes(layers, (50, 2))[-1].output_shape
    (8,)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.experiment import layer_configs as configs
from core.experiment.layer_configs import KerasActivation, Shape
from core.experiment.layers import CONV_CLASSES, RECURRENT_CLASSES, LayerSpec, ResidualConfig


class ShapeError(ValueError):
    """A layer that cannot take the shape it is given; `path` names it in the spec."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _sliding(size: int, extent: int, stride: int, dilation: int, padding: str) -> int:
    """Output length of a convolution or pool along one axis, as Keras computes it."""
    if padding in ("same", "causal"):
        return -(-size // stride)
    span = dilation * (extent - 1) + 1
    return (size - span) // stride + 1 if size >= span else 0


@dataclass(frozen=True)
class LayerShape:
    """One layer of a list as the data flows through it.

    `path` names it in the spec (`model.layers[2]`, `model.layers[2].config.layers[0]`),
    `name` in results (`conv2d_3`, `residual_2.conv2d_1`); `parameters` counts its
    weights as Keras does (batch norm's moving statistics included), `flops` the
    floating-point operations of its forward pass on one sample.
    """

    layer: LayerSpec
    path: str
    name: str
    input_shape: Shape
    output_shape: Shape
    parameters: int
    flops: int
    # For the layers of a residual block, its members' shapes (in order).
    inner: tuple[LayerShape, ...] = ()

    @property
    def class_name(self) -> str:
        return self.layer.class_name

    @property
    def timesteps(self) -> int:
        """Time steps a recurrent layer runs (0 for others)."""
        return self.input_shape[0] if self.class_name in RECURRENT_CLASSES else 0


def snake_name(class_name: str) -> str:
    """Keras' own lower-case layer names: `Conv2D` -> `conv2d`, `SimpleRNN` -> `simple_rnn`."""
    special = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
    if class_name in special:
        return special[class_name]
    out = ""
    for i, char in enumerate(class_name):
        if char.isupper() and i and class_name[i - 1].islower():
            out += "_"
        out += char.lower()
    return out


def layer_count(layers: Sequence[LayerSpec]) -> int:
    """Layers in a list, those inside residual blocks included."""
    return sum(
        1 + (layer_count(layer.config.layers) if isinstance(layer.config, ResidualConfig) else 0)
        for layer in layers
    )


def infer_shapes(
    layers: Sequence[LayerSpec], input_shape: Shape, *, path: str = "model.layers", prefix: str = ""
) -> list[LayerShape]:
    """Each layer's shapes, parameters and work, from the data's `input_shape` on.

    A leading `InputLayer` is checked against `input_shape` and left out.
    Raises `ShapeError` naming the first layer that cannot take its input.
    """
    out: list[LayerShape] = []
    shape = input_shape
    # Names count from the first layer after a leading InputLayer, so a list
    # names its layers the same with or without one.
    skip = int(bool(layers) and isinstance(layers[0].config, configs.InputLayerConfig))
    for index, layer in enumerate(layers):
        where = f"{path}[{index}]"
        if isinstance(layer.config, configs.InputLayerConfig):
            if index > 0 or prefix:
                raise ShapeError(where, "an InputLayer may only come first")
            given = layer.config.sample_shape()
            if given is not None and given != shape:
                raise ShapeError(
                    f"{where}.config.batch_shape",
                    f"the data gives samples of shape {list(shape)}, not {list(given)}",
                )
            continue
        name = f"{prefix}{snake_name(layer.class_name)}_{index + 1 - skip}"
        if isinstance(layer.config, ResidualConfig):
            inner = infer_shapes(
                layer.config.layers, shape, path=f"{where}.config.layers", prefix=f"{name}."
            )
            end = inner[-1].output_shape if inner else shape
            if end != shape:
                raise ShapeError(
                    where,
                    f"a residual block must give its input's shape {list(shape)}; "
                    f"this one gives {list(end)}",
                )
            out.append(
                LayerShape(
                    layer,
                    where,
                    name,
                    shape,
                    shape,
                    sum(i.parameters for i in inner),
                    sum(i.flops for i in inner) + math.prod(shape),
                    tuple(inner),
                )
            )
            continue
        try:
            result, parameters, flops = _infer(layer, shape)
        except ValueError as error:
            raise ShapeError(where, str(error)) from None
        if not result or 0 in result:
            raise ShapeError(where, f"leaves nothing of an input of shape {list(shape)}")
        out.append(LayerShape(layer, where, name, shape, result, parameters, flops))
        shape = result
    return out


def _need_rank(shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        dims = {1: "(features)", 2: "(steps, channels)", 3: "(height, width, channels)"}[rank]
        raise ValueError(f"{what} takes samples of shape {dims}; it gets {list(shape)}")


def _infer(layer: Any, shape: Shape) -> tuple[Shape, int, int]:
    """(output shape, parameters, forward flops per sample) of one layer."""
    config = layer.config
    name = layer.class_name
    size = math.prod(shape)
    if isinstance(config, configs.DenseConfig):
        fan_in = shape[-1]
        out = (*shape[:-1], config.units)
        return out, (fan_in + 1) * config.units, 2 * fan_in * math.prod(out)
    if isinstance(config, configs._ConvConfig):
        rank = config.RANK
        _need_rank(shape, rank + 1, name)
        kernel = configs.per_axis(config.kernel_size, rank)
        strides = configs.per_axis(config.strides, rank)
        dilation = configs.per_axis(config.dilation_rate, rank)
        spatial = tuple(
            _sliding(n, k, s, d, config.padding)
            for n, k, s, d in zip(shape[:-1], kernel, strides, dilation, strict=True)
        )
        out = (*spatial, config.filters)
        taps = math.prod(kernel) * shape[-1]
        return out, (taps + 1) * config.filters, 2 * taps * math.prod(out)
    if isinstance(config, configs._PoolConfig):
        rank = config.RANK
        _need_rank(shape, rank + 1, name)
        pool = configs.per_axis(config.pool_size, rank)
        spatial = tuple(
            _sliding(n, k, s, 1, config.padding)
            for n, k, s in zip(shape[:-1], pool, config.stride_axes(), strict=True)
        )
        out = (*spatial, shape[-1])
        return out, 0, math.prod(pool) * math.prod(out)
    if isinstance(config, configs.GlobalPoolConfig):
        _need_rank(shape, 3 if name.endswith("2D") else 2, name)
        kept = (1,) * (len(shape) - 1) if config.keepdims else ()
        return (*kept, shape[-1]), 0, size
    if isinstance(config, configs.FlattenConfig):
        return (size,), 0, 0
    if isinstance(config, configs.ReshapeConfig):
        target = list(config.target_shape)
        known = math.prod(d for d in target if d != -1)
        if -1 in target:
            if size % known:
                raise ValueError(f"cannot reshape {list(shape)} ({size} values) to {target}")
            target[target.index(-1)] = size // known
        if math.prod(target) != size:
            raise ValueError(f"cannot reshape {list(shape)} ({size} values) to {target}")
        return tuple(target), 0, 0
    if isinstance(config, configs._RecurrentConfig):
        _need_rank(shape, 2, name)
        steps, fan_in = shape
        units, gates = config.units, config.GATES
        biases = 2 if isinstance(config, configs.GRUConfig) else 1
        parameters = gates * units * (fan_in + units + biases)
        # the products with both kernels, and a few element-wise ops per gate
        flops = steps * (2 * gates * units * (fan_in + units) + 8 * gates * units)
        out = (steps, units) if config.return_sequences else (units,)
        return out, parameters, flops
    if isinstance(config, configs.BatchNormalizationConfig):
        return shape, 4 * shape[-1], 4 * size
    if isinstance(config, configs.LayerNormalizationConfig):
        return shape, 2 * shape[-1], 8 * size
    if isinstance(config, configs.DropoutConfig | configs.ActivationConfig):
        return shape, 0, 4 * size
    raise ValueError(f"{name} is not a layer gradwatch builds")  # pragma: no cover


def layer_members(shapes: Sequence[LayerShape]) -> list[LayerShape]:
    """The layers of a list, each residual block's members in its place."""
    return [m for shape in shapes for m in (layer_members(shape.inner) if shape.inner else [shape])]


def conv_channels(shapes: Sequence[LayerShape]) -> list[tuple[str, int]]:
    """(name, filters) of each convolution (Conv1D, Conv2D), residual blocks' members in
    their place: the layers whose per-channel gradient norms a result keeps."""
    return [
        (shape.name, shape.output_shape[-1])
        for shape in layer_members(shapes)
        if shape.class_name in CONV_CLASSES
    ]


def weighted_layers(shapes: Sequence[LayerShape]) -> list[LayerShape]:
    """The layers with weights, in order, residual blocks' members in their place."""
    out: list[LayerShape] = []
    for shape in shapes:
        if shape.inner:
            out += weighted_layers(shape.inner)
        elif shape.parameters:
            out.append(shape)
    return out


_KERNEL_AND_BIAS = ("kernel", "bias")
_WEIGHT_PARTS = {
    "Dense": _KERNEL_AND_BIAS,
    "Conv1D": _KERNEL_AND_BIAS,
    "Conv2D": _KERNEL_AND_BIAS,
    "SimpleRNN": ("kernel", "recurrent_kernel", "bias"),
    "LSTM": ("kernel", "recurrent_kernel", "bias"),
    "GRU": ("kernel", "recurrent_kernel", "bias"),
    "BatchNormalization": ("gamma", "beta"),
    "LayerNormalization": ("gamma", "beta"),
}


def weight_parts(class_name: str) -> tuple[str, ...]:
    """A layer's trainable weights as Keras names them, in Keras' order (none for most)."""
    return _WEIGHT_PARTS.get(class_name, ())


def probes_activations(shape: LayerShape) -> bool:
    """Whether the capture probes the layer's activations: a recurrent layer, or one
    with an activation other than linear."""
    if shape.class_name in RECURRENT_CLASSES:
        return True
    activation = getattr(shape.layer.config, "activation", None)
    return activation is not None and activation is not KerasActivation.LINEAR
