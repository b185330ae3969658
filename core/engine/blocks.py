"""The blocks a layer list is built of: one per layer, over Keras' own variables.

A Dense's kernel and bias, a Conv2D's kernel as Keras shapes it, a batch norm's
gamma and beta: a user's weights mean here what they mean in Keras. Each block's
forward pass is written out, so that it can hand back every probed layer's
pre-activation and activation (`Pass.probe`), as the MLP's does
(core/engine/network.py). Dropout draws from a hash of integers
(`uniform_draws`), the same on a plain graph and on XLA.

The recurrent block, with its own loops, is in core/engine/recurrent.py.
This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf

from core.engine.network import ACTIVATION_FUNCTIONS
from core.experiment import layer_configs as configs
from core.experiment.layer_configs import Initializer, KerasActivation
from core.experiment.layer_shapes import LayerShape, weight_parts
from core.experiment.spec import Activation

ActivationFn = Callable[[tf.Tensor], tf.Tensor]


def activation_fn(name: KerasActivation) -> ActivationFn:
    if name is KerasActivation.SOFTMAX:
        return tf.nn.softmax
    return ACTIVATION_FUNCTIONS[Activation(name.value)]


def probe_kind(name: KerasActivation) -> Activation:
    """The kind the activation statistics judge (core.engine.trainer.activation_stats)."""
    return Activation.LINEAR if name is KerasActivation.SOFTMAX else Activation(name.value)


@dataclass
class Pass:
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


class Block:
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

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
        raise NotImplementedError


class Affine(Block):
    """Dense and convolution: a product with the kernel, the bias, an activation."""

    parts = weight_parts("Dense")

    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, configs.DenseConfig | configs._ConvConfig)
        self.config: configs.DenseConfig | configs._ConvConfig = config
        if isinstance(config, configs.DenseConfig):
            self.layer: Any = keras.layers.Dense(config.units, name=self.name)
        else:
            assert isinstance(config, configs._ConvConfig)
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

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
        kernel, bias = self.layer.kernel.value, self.layer.bias.value
        config = self.config
        if isinstance(config, configs.DenseConfig):
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


def _convolve(h: tf.Tensor, kernel: tf.Tensor, config: configs._ConvConfig) -> tf.Tensor:
    """A convolution as Keras computes it (causal: the start padded, then valid)."""
    rank = config.RANK
    strides = list(configs.per_axis(config.strides, rank))
    dilations = list(configs.per_axis(config.dilation_rate, rank))
    padding = config.padding
    if padding == "causal":
        left = dilations[0] * (int(kernel.shape[0]) - 1)
        h = tf.pad(h, [[0, 0], [left, 0], [0, 0]])
        padding = "valid"
    return tf.nn.convolution(
        h, kernel, strides=strides, padding=padding.upper(), dilations=dilations
    )


class Pool(Block):
    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, configs._PoolConfig)
        self.window = list(configs.per_axis(config.pool_size, config.RANK))
        self.strides = list(config.stride_axes())
        self.padding = config.padding.upper()
        self.max = shape.class_name.startswith("Max")

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
        pool = tf.nn.max_pool if self.max else tf.nn.avg_pool
        return pool(h, self.window, self.strides, self.padding)


class Reshaping(Block):
    """Flatten, Reshape and global average pooling: no weights, a new shape."""

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
        config = self.shape.layer.config
        if isinstance(config, configs.GlobalPoolConfig):
            axes = list(range(1, len(h.shape) - 1))
            return tf.reduce_mean(h, axis=axes, keepdims=config.keepdims)
        assert isinstance(config, configs.FlattenConfig | configs.ReshapeConfig)
        return tf.reshape(h, [-1, *self.shape.output_shape])


class Norm(Block):
    """Batch and layer normalization, by Keras' own layers (their gamma and beta)."""

    parts = weight_parts("BatchNormalization")

    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(
            config, configs.BatchNormalizationConfig | configs.LayerNormalizationConfig
        )
        self.config: configs.BatchNormalizationConfig | configs.LayerNormalizationConfig = config
        if isinstance(config, configs.BatchNormalizationConfig):
            self.layer: Any = keras.layers.BatchNormalization(
                momentum=config.momentum, epsilon=config.epsilon, name=self.name
            )
        else:
            assert isinstance(config, configs.LayerNormalizationConfig)
            self.layer = keras.layers.LayerNormalization(epsilon=config.epsilon, name=self.name)
        self.layer.build((None, *shape.input_shape))
        self.batch = isinstance(config, configs.BatchNormalizationConfig)

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

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
        if not self.batch:
            return self.layer(h)
        mask = state.mask
        if mask is not None:
            # padding rows of a short last batch stay out of the moments
            mask = tf.broadcast_to(
                tf.reshape(mask > 0, [-1] + [1] * (len(h.shape) - 2)), tf.shape(h)[:-1]
            )
        return self.layer(h, training=state.training, mask=mask)


class Dropout(Block):
    """Dropout whose draws are the same on a plain graph and on XLA (`uniform_draws`):
    each training pass draws from (run seed, layer, a pass counter), so runs repeat."""

    def __init__(
        self, shape: LayerShape, counter: keras.Variable, seed: keras.Variable, number: int
    ) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, configs.DropoutConfig)
        self.rate = config.rate
        self.counter = counter
        # Variables, not constants: a compiled graph serves every run of its shape.
        self.seed = seed
        self.number = number

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
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


class ActivationBlock(Block):
    def __init__(self, shape: LayerShape) -> None:
        super().__init__(shape)
        config = shape.layer.config
        assert isinstance(config, configs.ActivationConfig)
        self.activation = activation_fn(config.activation)
        linear = config.activation is KerasActivation.LINEAR
        self.probed = () if linear else (probe_kind(config.activation),)

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
        a = self.activation(h)
        if self.probed:
            state.probe(h, a)
        return a


class Residual(Block):
    def __init__(self, shape: LayerShape, blocks: list[Block]) -> None:
        super().__init__(shape)
        self.blocks = blocks

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
        out = h
        for block in self.blocks:
            out = block(out, state)
        return h + out
