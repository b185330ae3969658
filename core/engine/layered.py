"""A network built from a spec's layer list (core/experiment/layers.py), by our own code.

Each layer of the list becomes a block over Keras' own variables (a Dense's
kernel and bias, a Conv2D's kernel as Keras shapes it, an LSTM cell's
kernel, recurrent_kernel and bias in Keras' gate order), so a user's weights
mean here what they mean in Keras. The forward pass is written out rather
than left to Keras' layers for two reasons:

- capture: the pass hands back every probed layer's pre-activation and
  activation, as the MLP's does (core/engine/network.py);
- gradients through time: the recurrent loops are ours, and add a zero
  perturbation to each hidden state h_t. Differentiating the loss with
  respect to those zeros in the training step's own backward pass gives
  dL/dh_t for every t at the cost of one addition per step: the norms
  ||dL/dh_t|| a result stores under `through_time`.

`tests/core/test_layered.py` checks the recurrent loops against
keras.layers.SimpleRNN/LSTM/GRU with the same weights, and dL/dh_t against a
GradientTape on the same weights unrolled by hand.

Layers are named by class and position, `conv2d_1`, `lstm_3`, blocks'
members `residual_2.dense_1`, and the output layer `output`: the names the
spec's `infer_shapes` gives them.

This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import orjson
import tensorflow as tf

from core.engine.network import (
    ACTIVATION_FUNCTIONS,
    Architecture,
    ForwardPass,
    Network,
    kernel_initializer,
)
from core.experiment.layers import (
    ActivationConfig,
    BatchNormalizationConfig,
    DenseConfig,
    DropoutConfig,
    FlattenConfig,
    GlobalPoolConfig,
    GRUConfig,
    Initializer,
    KerasActivation,
    LayerNormalizationConfig,
    LayerShape,
    LSTMConfig,
    ReshapeConfig,
    SimpleRNNConfig,
    _ConvConfig,
    _PoolConfig,
    _RecurrentConfig,
    resolve_initializer,
    weight_parts,
)
from core.experiment.spec import (
    Activation,
    ExperimentSpec,
    InitializerSpec,
    LayeredShapes,
    layered_shapes,
    sample_shape,
)

ActivationFn = Callable[[tf.Tensor], tf.Tensor]


def activation_fn(name: KerasActivation) -> ActivationFn:
    if name is KerasActivation.SOFTMAX:
        return tf.nn.softmax
    return ACTIVATION_FUNCTIONS[Activation(name.value)]


def probe_kind(name: KerasActivation) -> Activation:
    """The kind the activation statistics judge (core.engine.trainer.activation_stats)."""
    return Activation.LINEAR if name is KerasActivation.SOFTMAX else Activation(name.value)


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
        return [layer.name for layer in _weighted(self.shapes.layers)]


def _weighted(shapes: Sequence[LayerShape]) -> list[LayerShape]:
    out: list[LayerShape] = []
    for shape in shapes:
        if shape.inner:
            out += _weighted(shape.inner)
        elif shape.parameters:
            out.append(shape)
    return out


@dataclass
class _Pass:
    """What a forward pass collects on its way through the blocks."""

    training: bool
    mask: tf.Tensor | None
    perturbations: Iterator[tf.Tensor] | None
    pre_activations: list[tf.Tensor] = field(default_factory=list)
    activations: list[tf.Tensor] = field(default_factory=list)

    def probe(self, z: tf.Tensor, a: tf.Tensor) -> None:
        """Keep a layer's pre-activation and activation as (positions, units)."""
        units = int(a.shape[-1])
        self.pre_activations.append(tf.reshape(z, [-1, units]))
        self.activations.append(tf.reshape(a, [-1, units]))


class _Block:
    """One layer of the list. `variables` are its weights (in `parts` order)."""

    parts: tuple[str, ...] = ()
    probed: tuple[Activation, ...] = ()  # kinds of the activations it probes
    timesteps: int = 0  # recurrent layers: the time steps of its loop

    def __init__(self, shape: LayerShape) -> None:
        self.shape = shape
        self.name = shape.name

    @property
    def variables(self) -> list[keras.Variable]:
        return []

    @property
    def non_trainable(self) -> list[keras.Variable]:
        return []

    def initializers(self) -> list[Initializer]:
        """One initializer per variable of `variables`, then `non_trainable`."""
        return []

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        raise NotImplementedError


class _Affine(_Block):
    """Dense and convolution: a product with the kernel, the bias, an activation."""

    parts = weight_parts("Dense")

    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, DenseConfig | _ConvConfig)
        self.config: DenseConfig | _ConvConfig = config
        if isinstance(config, DenseConfig):
            self.layer: Any = keras.layers.Dense(config.units, name=self.name)
        else:
            assert isinstance(config, _ConvConfig)
            make = keras.layers.Conv1D if config.RANK == 1 else keras.layers.Conv2D
            self.layer = make(
                config.filters,
                config.kernel_size,
                strides=config.strides,
                padding=config.padding,
                dilation_rate=config.dilation_rate,
                name=self.name,
            )
        self.layer.build((None, *shape.input_shape))
        self.activation = activation_fn(config.activation)
        self.linear = config.activation is KerasActivation.LINEAR
        self.probed = () if self.linear else (probe_kind(config.activation),)

    @property
    def variables(self) -> list[keras.Variable]:
        return [self.layer.kernel, self.layer.bias]

    def initializers(self) -> list[Initializer]:
        return [self.config.kernel_initializer, self.config.bias_initializer]

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        kernel, bias = self.layer.kernel.value, self.layer.bias.value
        config = self.config
        if isinstance(config, DenseConfig):
            if len(h.shape) == 2:
                z = tf.matmul(h, kernel)
            else:
                flat = tf.matmul(tf.reshape(h, [-1, int(h.shape[-1])]), kernel)
                z = tf.reshape(flat, [-1, *h.shape[1:-1], int(kernel.shape[-1])])
        else:
            z = _convolve(h, kernel, config)
        z = tf.nn.bias_add(z, bias)
        if self.linear:
            return z
        a = self.activation(z)
        state.probe(z, a)
        return a


def _convolve(h: tf.Tensor, kernel: tf.Tensor, config: _ConvConfig) -> tf.Tensor:
    """A convolution as Keras computes it (causal: the start padded, then valid)."""
    rank = config.RANK
    strides = _axes(config.strides, rank)
    dilations = _axes(config.dilation_rate, rank)
    padding = config.padding
    if padding == "causal":
        left = dilations[0] * (int(kernel.shape[0]) - 1)
        h = tf.pad(h, [[0, 0], [left, 0], [0, 0]])
        padding = "valid"
    return tf.nn.convolution(
        h, kernel, strides=strides, padding=padding.upper(), dilations=dilations
    )


def _axes(value: int | list[int] | None, rank: int) -> list[int]:
    if value is None:
        return [1] * rank
    return [value] * rank if isinstance(value, int) else list(value)


class _Pool(_Block):
    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, _PoolConfig)
        self.window = _axes(config.pool_size, config.RANK)
        self.strides = list(config.stride_axes())
        self.padding = config.padding.upper()
        self.max = shape.class_name.startswith("Max")

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        pool = tf.nn.max_pool if self.max else tf.nn.avg_pool
        return pool(h, self.window, self.strides, self.padding)


class _Reshaping(_Block):
    """Flatten, Reshape and global average pooling: no weights, a new shape."""

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        config = self.shape.layer.config
        if isinstance(config, GlobalPoolConfig):
            axes = list(range(1, len(h.shape) - 1))
            return tf.reduce_mean(h, axis=axes, keepdims=config.keepdims)
        assert isinstance(config, FlattenConfig | ReshapeConfig)
        return tf.reshape(h, [-1, *self.shape.output_shape])


class _Norm(_Block):
    """Batch and layer normalization, by Keras' own layers (their gamma and beta)."""

    parts = weight_parts("BatchNormalization")

    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, BatchNormalizationConfig | LayerNormalizationConfig)
        self.config: BatchNormalizationConfig | LayerNormalizationConfig = config
        if isinstance(config, BatchNormalizationConfig):
            self.layer: Any = keras.layers.BatchNormalization(
                momentum=config.momentum, epsilon=config.epsilon, name=self.name
            )
        else:
            assert isinstance(config, LayerNormalizationConfig)
            self.layer = keras.layers.LayerNormalization(epsilon=config.epsilon, name=self.name)
        self.layer.build((None, *shape.input_shape))
        self.batch = isinstance(config, BatchNormalizationConfig)

    @property
    def variables(self) -> list[keras.Variable]:
        return [self.layer.gamma, self.layer.beta]

    @property
    def non_trainable(self) -> list[keras.Variable]:
        return [self.layer.moving_mean, self.layer.moving_variance] if self.batch else []

    def initializers(self) -> list[Initializer]:
        config = self.config
        start: list[Initializer] = [config.gamma_initializer, config.beta_initializer]
        return [*start, "zeros", "ones"] if self.batch else start

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        if not self.batch:
            return self.layer(h)
        mask = state.mask
        if mask is not None:
            # padding rows of a short last batch stay out of the moments
            mask = tf.broadcast_to(
                tf.reshape(mask > 0, [-1] + [1] * (len(h.shape) - 2)), tf.shape(h)[:-1]
            )
        return self.layer(h, training=state.training, mask=mask)


class _Dropout(_Block):
    """Dropout whose draws are the same on a plain graph and on XLA (`uniform_draws`):
    each training pass draws from (run seed, layer, a pass counter), so runs repeat."""

    def __init__(
        self, shape: LayerShape, counter: keras.Variable, seed: keras.Variable, number: int
    ) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, DropoutConfig)
        self.rate = config.rate
        self.counter = counter
        # Variables, not constants: a compiled graph serves every run of its shape.
        self.seed = seed
        self.number = number

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        if not state.training or self.rate == 0:
            return h
        salt = tf.cast(self.seed.value, tf.int64) * 64 + self.number
        draws = uniform_draws(tf.shape(h), self.counter.value, salt)
        return tf.where(draws >= self.rate, h / (1 - self.rate), tf.zeros_like(h))


_MASK = 0xFFFFFFFF


def _mix(x: tf.Tensor) -> tf.Tensor:
    """A 32-bit integer hash (xor-shift-multiply rounds) in int64: every product stays
    under 2**63, so plain graphs and XLA compute it exactly alike."""
    for _ in range(2):
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
        x = tf.bitwise.bitwise_and(x * 0x45D9F3B, _MASK)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def uniform_draws(shape: tf.Tensor, counter: tf.Tensor, salt: tf.Tensor) -> tf.Tensor:
    """Uniform [0, 1) float32s of `shape`, a hash of (element, counter, salt).

    TensorFlow's stateless generators draw differently under XLA than on its own
    kernels (Philox included); integer arithmetic does not.
    """
    index = tf.range(tf.reduce_prod(shape), dtype=tf.int64)
    start = tf.bitwise.bitwise_and(
        tf.cast(counter, tf.int64) * 0x165667B1 + _mix(tf.bitwise.bitwise_and(salt, _MASK)),
        _MASK,
    )
    x = _mix(tf.bitwise.bitwise_and(_mix(tf.bitwise.bitwise_xor(index, start)) + start, _MASK))
    draws = tf.cast(tf.bitwise.right_shift(x, 8), tf.float32) / float(1 << 24)
    return tf.reshape(draws, shape)


class _Activation(_Block):
    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, ActivationConfig)
        self.activation = activation_fn(config.activation)
        linear = config.activation is KerasActivation.LINEAR
        self.probed = () if linear else (probe_kind(config.activation),)

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        a = self.activation(h)
        if self.probed:
            state.probe(h, a)
        return a


class _Recurrent(_Block):
    """SimpleRNN, LSTM or GRU over a Keras cell's own weights, our own loop.

    The input's products with the kernel are taken for every step at once; the
    loop does the recurrent products. With perturbations (a training step),
    each step's hidden state gets its zero added, so the step's gradient with
    respect to those zeros is dL/dh_t.
    """

    parts = weight_parts("LSTM")

    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, _RecurrentConfig)
        self.config = config
        self.units = config.units
        self.timesteps = shape.input_shape[0]
        self.activation = activation_fn(config.activation)
        if isinstance(config, LSTMConfig):
            self.cell: Any = keras.layers.LSTMCell(config.units, name=self.name)
        elif isinstance(config, GRUConfig):
            self.cell = keras.layers.GRUCell(config.units, name=self.name)
        else:
            assert isinstance(config, SimpleRNNConfig)
            self.cell = keras.layers.SimpleRNNCell(config.units, name=self.name)
        self.cell.build((None, shape.input_shape[-1]))
        self.recurrent_activation = activation_fn(
            getattr(config, "recurrent_activation", KerasActivation.SIGMOID)
        )
        # A SimpleRNN's state is its activation; LSTM and GRU states are mixes of
        # gates, judged by their mean and spread alone.
        simple = isinstance(config, SimpleRNNConfig)
        self.probed = (probe_kind(config.activation) if simple else Activation.LINEAR,)

    @property
    def variables(self) -> list[keras.Variable]:
        return [self.cell.kernel, self.cell.recurrent_kernel, self.cell.bias]

    def initializers(self) -> list[Initializer]:
        config = self.config
        return [config.kernel_initializer, config.recurrent_initializer, config.bias_initializer]

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        perturbation = next(state.perturbations) if state.perturbations is not None else None
        states = self.run(h, perturbation)  # (T, n, units), time major
        sequence = tf.transpose(states, [1, 0, 2])
        if self.probed:
            z = (
                self._pre_activations(h, sequence)
                if self.probed[0] is not Activation.LINEAR
                else sequence
            )
            state.probe(z, sequence)
        return sequence if self.config.return_sequences else sequence[:, -1]

    def run(self, x: tf.Tensor, perturbation: tf.Tensor | None) -> tf.Tensor:
        """Every step's hidden state, (T, n, units), for inputs x (n, T, features)."""
        kernel = self.cell.kernel.value
        recurrent = self.cell.recurrent_kernel.value
        bias = self.cell.bias.value
        n, steps, features = tf.shape(x)[0], int(x.shape[1]), int(x.shape[2])
        input_bias = bias[0] if isinstance(self.config, GRUConfig) else bias
        projected = tf.reshape(
            tf.matmul(tf.reshape(x, [-1, features]), kernel) + input_bias, [n, steps, -1]
        )
        projected = tf.transpose(projected, [1, 0, 2])  # (T, n, gates x units)
        zeros = tf.zeros([n, self.units], x.dtype)
        if perturbation is None:
            perturbation = tf.zeros([steps, 1, 1], x.dtype)  # broadcast: adds nothing
        else:
            perturbation = tf.transpose(perturbation, [1, 0, 2])
        cell = self._step_fn(recurrent, bias)
        if isinstance(self.config, LSTMConfig):
            outputs = tf.scan(
                lambda carry, inputs: cell(carry, *inputs),
                (projected, perturbation),
                initializer=(zeros, zeros),
            )
            return outputs[0]
        return tf.scan(
            lambda carry, inputs: cell(carry, *inputs), (projected, perturbation), initializer=zeros
        )

    def _step_fn(self, recurrent: tf.Tensor, bias: tf.Tensor) -> Callable[..., Any]:
        """One time step: (carry, projected input, perturbation) -> the new carry."""
        act, gate, units = self.activation, self.recurrent_activation, self.units

        if isinstance(self.config, LSTMConfig):

            def lstm(carry: tuple[tf.Tensor, tf.Tensor], xz: tf.Tensor, eps: tf.Tensor) -> Any:
                h, c = carry
                z = xz + tf.matmul(h, recurrent)
                i, f, g, o = tf.split(z, 4, axis=-1)
                c = gate(f) * c + gate(i) * act(g)
                return gate(o) * act(c) + eps, c

            return lstm
        if isinstance(self.config, GRUConfig):
            recurrent_bias = bias[1]

            def gru(h: tf.Tensor, xz: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
                inner = tf.matmul(h, recurrent) + recurrent_bias
                x_z, x_r, x_h = tf.split(xz, 3, axis=-1)
                r_z, r_r, r_h = tf.split(inner, 3, axis=-1)
                update = gate(x_z + r_z)
                candidate = act(x_h + gate(x_r + r_r) * r_h)
                return update * h + (1 - update) * candidate + eps

            return gru

        def simple(h: tf.Tensor, xz: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
            return act(xz + tf.matmul(h, recurrent)) + eps

        del units
        return simple

    def _pre_activations(self, x: tf.Tensor, sequence: tf.Tensor) -> tf.Tensor:
        """A SimpleRNN's z_t = x_t W + b + h_{t-1} U, from its states (for the probe)."""
        previous = tf.concat([tf.zeros_like(sequence[:, :1]), sequence[:, :-1]], axis=1)
        features = int(x.shape[-1])
        n, steps = tf.shape(x)[0], int(x.shape[1])
        z = tf.matmul(tf.reshape(x, [-1, features]), self.cell.kernel.value) + self.cell.bias.value
        z += tf.matmul(tf.reshape(previous, [-1, self.units]), self.cell.recurrent_kernel.value)
        return tf.reshape(z, [n, steps, self.units])


class _Residual(_Block):
    def __init__(self, shape: LayerShape, blocks: list[_Block]) -> None:
        super().__init__(shape)
        self.blocks = blocks

    def __call__(self, h: tf.Tensor, state: _Pass) -> tf.Tensor:
        out = h
        for block in self.blocks:
            out = block(out, state)
        return h + out


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
        self.output = _Affine(architecture.shapes.output)
        self.output.linear = True  # logits: the loss applies the sigmoid or softmax
        self.weighted = [b for b in _flatten(self.blocks) if b.variables] + [self.output]
        self.recurrent = [b for b in _flatten(self.blocks) if isinstance(b, _Recurrent)]
        self.probe_kinds = tuple(kind for b in _flatten(self.blocks) for kind in b.probed)
        self.probe_names = [b.name for b in _flatten(self.blocks) for _ in b.probed]
        self.output_units = architecture.output_units

    def _block(self, shape: LayerShape) -> _Block:
        config = shape.layer.config
        if shape.inner:
            return _Residual(shape, [self._block(inner) for inner in shape.inner])
        if isinstance(config, DenseConfig | _ConvConfig):
            return _Affine(shape)
        if isinstance(config, _PoolConfig):
            return _Pool(shape)
        if isinstance(config, GlobalPoolConfig | FlattenConfig | ReshapeConfig):
            return _Reshaping(shape)
        if isinstance(config, BatchNormalizationConfig | LayerNormalizationConfig):
            return _Norm(shape)
        if isinstance(config, DropoutConfig):
            self._dropouts += 1
            return _Dropout(shape, self._dropout_counter, self._dropout_seed, self._dropouts)
        if isinstance(config, ActivationConfig):
            return _Activation(shape)
        assert isinstance(config, _RecurrentConfig)
        return _Recurrent(shape)

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
    def timesteps(self) -> list[int]:
        """Each recurrent layer's time steps, in order."""
        return [block.timesteps for block in self.recurrent]

    @property
    def recurrent_layers(self) -> list[tuple[str, int]]:
        """(name, time steps) of each recurrent layer, in order."""
        return [(block.name, block.timesteps) for block in self.recurrent]

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
        state = _Pass(training, mask, iter(perturbations) if perturbations else None)
        h = x
        for block in self.blocks:
            h = block(h, state)
        if training and any(isinstance(b, _Dropout) for b in _flatten(self.blocks)):
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


def _flatten(blocks: Sequence[_Block]) -> list[_Block]:
    out: list[_Block] = []
    for block in blocks:
        out += _flatten(block.blocks) if isinstance(block, _Residual) else [block]
    return out


def initializer_spec(value: Initializer) -> InitializerSpec:
    choice = resolve_initializer(value)
    return InitializerSpec.model_validate({"kind": choice.kind, **dict(choice.parameters)})


def _initial_value(
    block: _Block, variable: keras.Variable, value: Initializer, *, seed: int
) -> np.ndarray:
    """A variable's starting values; an LSTM's forget gate bias starts at one
    (`unit_forget_bias`), as Keras starts it."""
    make = kernel_initializer(initializer_spec(value), seed=seed)
    shape = tuple(variable.shape)
    config = getattr(block, "config", None)
    if (
        isinstance(block, _Recurrent)
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
    for shape in _members(shapes.layers):
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


def _members(shapes: Sequence[LayerShape]) -> list[LayerShape]:
    out: list[LayerShape] = []
    for shape in shapes:
        out += _members(shape.inner) if shape.inner else [shape]
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
