"""A network built from a spec's layer list (core/experiment/layers.py), by our own code.

Each layer of the list becomes a block (core/engine/blocks.py, and
core/engine/recurrent.py for the recurrent loops) over Keras' own variables, so
a user's weights mean here what they mean in Keras; the forward pass is written
out rather than left to Keras' layers, so that it captures what the MLP's does
and gradients through time.

Layers are named by class and position, `conv2d_1`, `lstm_3`, blocks'
members `residual_2.dense_1`, and the output layer `output`: the names the
spec's `infer_shapes` gives them.

This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import orjson
import tensorflow as tf

from core.engine.blocks import (
    ActivationBlock,
    Affine,
    Block,
    Dropout,
    Norm,
    Pass,
    Pool,
    Reshaping,
    Residual,
)
from core.engine.network import Architecture, ForwardPass, Network, kernel_initializer
from core.engine.recurrent import Recurrent
from core.experiment.layer_configs import (
    ActivationConfig,
    BatchNormalizationConfig,
    DenseConfig,
    DropoutConfig,
    FlattenConfig,
    GlobalPoolConfig,
    Initializer,
    LayerNormalizationConfig,
    LSTMConfig,
    ReshapeConfig,
    _ConvConfig,
    _PoolConfig,
    _RecurrentConfig,
    resolve_initializer,
)
from core.experiment.layer_shapes import (
    LayerShape,
    conv_channels,
    layer_members,
    weighted_layers,
)
from core.experiment.sizing import LayeredShapes, layered_shapes
from core.experiment.spec import ExperimentSpec, InitializerSpec, sample_shape


@dataclass(frozen=True)
class LayeredArchitecture:
    """What a layer list's compiled graph depends on; equal ones share a trainer.

    `signature` is the list, the data's sample shape and the output, as JSON.
    """

    signature: str
    regression: bool
    shapes: LayeredShapes = field(compare=False, hash=False, repr=False)

    @classmethod
    def from_spec(cls, spec: ExperimentSpec) -> LayeredArchitecture:
        shapes = layered_shapes(spec)
        assert shapes is not None, "the spec has no layer list"
        layers = [shape.layer.model_dump(mode="json") for shape in shapes.layers]
        signature = orjson.dumps(
            {"layers": layers, "input": sample_shape(spec.dataset)}, option=orjson.OPT_SORT_KEYS
        ).decode()
        return cls(signature, spec.dataset.regression, shapes)

    @property
    def output_units(self) -> int:
        return self.shapes.output.output_shape[0]

    @property
    def layer_names(self) -> list[str]:
        """The layers with weights, in order, `output` last."""
        return [layer.name for layer in weighted_layers(self.shapes.layers)]


class LayeredNetwork:
    """The blocks of a `LayeredArchitecture`, built and ready; the MLP's interface
    (core.engine.network.Network), plus the perturbations of its recurrent layers."""

    def __init__(self, architecture: LayeredArchitecture) -> None:
        self.architecture = architecture
        self.regression = architecture.regression
        self._dropout_counter = keras.Variable(
            0, dtype="int64", trainable=False, name="dropout_step"
        )
        self._dropout_seed = keras.Variable(0, dtype="int64", trainable=False, name="dropout_seed")
        self._dropouts = 0
        self.blocks = [self._block(shape) for shape in architecture.shapes.hidden]
        self.output = Affine(architecture.shapes.output)
        self.output.linear = True  # logits: the loss applies the sigmoid or softmax
        self.weighted = [b for b in _flatten(self.blocks) if b.variables] + [self.output]
        self.recurrent = [b for b in _flatten(self.blocks) if isinstance(b, Recurrent)]
        self.probe_kinds = tuple(kind for b in _flatten(self.blocks) for kind in b.probed)
        self.probe_names = [b.name for b in _flatten(self.blocks) for _ in b.probed]
        self.output_units = architecture.output_units

    def _block(self, shape: LayerShape) -> Block:
        config = shape.layer.config
        if shape.inner:
            return Residual(shape, [self._block(inner) for inner in shape.inner])
        if isinstance(config, DenseConfig | _ConvConfig):
            return Affine(shape)
        if isinstance(config, _PoolConfig):
            return Pool(shape)
        if isinstance(config, GlobalPoolConfig | FlattenConfig | ReshapeConfig):
            return Reshaping(shape)
        if isinstance(config, BatchNormalizationConfig | LayerNormalizationConfig):
            return Norm(shape)
        if isinstance(config, DropoutConfig):
            self._dropouts += 1
            return Dropout(shape, self._dropout_counter, self._dropout_seed, self._dropouts)
        if isinstance(config, ActivationConfig):
            return ActivationBlock(shape)
        assert isinstance(config, _RecurrentConfig)
        return Recurrent(shape)

    @property
    def layer_names(self) -> list[str]:
        return [block.name for block in self.weighted]

    @property
    def variable_parts(self) -> list[tuple[str, str]]:
        """(layer, part) of each captured variable: `("lstm_1", "recurrent_kernel")`."""
        return [(block.name, part) for block in self.weighted for part in block.parts]

    @property
    def captured_variables(self) -> list[keras.Variable]:
        return [v for block in self.weighted for v in block.variables]

    @property
    def trainable_variables(self) -> list[keras.Variable]:
        return self.captured_variables

    @property
    def state_variables(self) -> list[keras.Variable]:
        """What a training pass reads or writes besides the trainable variables: batch
        norm's moving statistics, and dropout's pass counter and run seed."""
        moving = [v for block in _flatten(self.blocks) for v in block.non_trainable]
        return [*moving, self._dropout_counter, self._dropout_seed]

    @property
    def timesteps(self) -> list[int]:
        """Each recurrent layer's time steps, in order."""
        return [block.timesteps for block in self.recurrent]

    @property
    def recurrent_layers(self) -> list[tuple[str, int]]:
        """(name, time steps) of each recurrent layer, in order."""
        return [(block.name, block.timesteps) for block in self.recurrent]

    @property
    def conv_layers(self) -> list[tuple[str, int]]:
        """(name, filters) of each convolution, in order, blocks' members in their place."""
        return conv_channels(self.architecture.shapes.layers)

    @property
    def conv_kernels(self) -> list[int]:
        """Where each convolution's kernel is among `captured_variables`, in order."""
        parts = self.variable_parts
        return [parts.index((name, "kernel")) for name, _ in self.conv_layers]

    def zero_perturbations(self, batch: int) -> list[tf.Tensor]:
        """One zero (batch, T, units) per recurrent layer, to add to its hidden states."""
        return [tf.zeros([batch, b.timesteps, b.units]) for b in self.recurrent]

    def forward(
        self,
        x: tf.Tensor,
        *,
        training: bool,
        mask: tf.Tensor | None = None,
        unroll_small: bool = False,
        perturbations: Sequence[tf.Tensor] = (),
    ) -> ForwardPass:
        """Logits, plus each probed layer's pre-activation and activation as
        (positions, units). `unroll_small` is the MLP's and changes nothing here."""
        state = Pass(training, mask, iter(perturbations) if perturbations else None)
        h = x
        for block in self.blocks:
            h = block(h, state)
        if training and any(isinstance(b, Dropout) for b in _flatten(self.blocks)):
            self._dropout_counter.assign_add(1)
        logits = self.output(h, state)
        return ForwardPass(logits, state.pre_activations, state.activations)

    def initialize(self, initializer: InitializerSpec, *, seed: int) -> None:
        """Every variable from its layer's own initializer (the MLP's `initializer` does
        not apply to a layer list), seeded from `seed` in order."""
        del initializer
        index = 0
        for block in [*_flatten(self.blocks), self.output]:
            variables = block.variables + block.non_trainable
            for variable, choice in zip(variables, block.initializers(), strict=True):
                value = _initial_value(block, variable, choice, seed=seed + index)
                variable.assign(value)
                index += 1
        self._dropout_counter.assign(0)
        self._dropout_seed.assign(seed)


def _flatten(blocks: Sequence[Block]) -> list[Block]:
    out: list[Block] = []
    for block in blocks:
        out += _flatten(block.blocks) if isinstance(block, Residual) else [block]
    return out


def initializer_spec(value: Initializer) -> InitializerSpec:
    choice = resolve_initializer(value)
    return InitializerSpec.model_validate({"kind": choice.kind, **dict(choice.parameters)})


def _initial_value(
    block: Block, variable: keras.Variable, value: Initializer, *, seed: int
) -> np.ndarray:
    """A variable's starting values; an LSTM's forget gate bias starts at one
    (`unit_forget_bias`), as Keras starts it."""
    make = kernel_initializer(initializer_spec(value), seed=seed)
    shape = tuple(variable.shape)
    config = getattr(block, "config", None)
    if (
        isinstance(block, Recurrent)
        and isinstance(config, LSTMConfig)
        and config.unit_forget_bias
        and variable is block.cell.bias
    ):
        units = block.units
        return np.concatenate(
            [np.asarray(make((units,))), np.ones(units), np.asarray(make((2 * units,)))]
        ).astype(np.float32)
    return np.asarray(make(shape), dtype=np.float32)


def build_network(architecture: Architecture | LayeredArchitecture) -> Network | LayeredNetwork:
    """The network an architecture describes: the MLP or a layer list."""
    if isinstance(architecture, LayeredArchitecture):
        return LayeredNetwork(architecture)
    return Network(architecture)


def layer_entries(shapes: LayeredShapes, *, regression: bool) -> list[dict[str, Any]]:
    """result.json's `layers` for a layer list: every layer, blocks' members in their
    place, with its class, output shape and weights (core/experiment/result.py)."""
    out: list[dict[str, Any]] = []
    for shape in layer_members(shapes.layers):
        config = shape.layer.config
        activation = getattr(config, "activation", None)
        kernel = _kernel_size(shape)
        out.append(
            {
                "name": shape.name,
                "class_name": shape.class_name,
                "units": shape.output_shape[-1],
                "activation": None if activation is None else str(activation),
                "parameters": shape.parameters,
                "kernel_size": kernel,
                "output_shape": list(shape.output_shape),
                **({"timesteps": shape.timesteps} if shape.timesteps else {}),
            }
        )
    if out:
        out[-1]["activation"] = output_activation(
            shapes.output.output_shape[0], regression=regression
        )
    return out


def _kernel_size(shape: LayerShape) -> int | None:
    """Weights in the layer's kernel (the input kernel of a recurrent layer), None without."""
    config = shape.layer.config
    if isinstance(config, DenseConfig):
        return shape.input_shape[-1] * config.units
    if isinstance(config, _ConvConfig):
        return (shape.parameters // config.filters - 1) * config.filters
    if isinstance(config, _RecurrentConfig):
        return shape.input_shape[-1] * config.units * config.GATES
    return None


def output_activation(units: int, *, regression: bool) -> str:
    """What the output applies to its logits: the loss's link, as results name it."""
    if regression:
        return "linear"
    return "sigmoid" if units == 1 else "softmax"
