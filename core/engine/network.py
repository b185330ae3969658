"""The MLP as Keras layers, with a forward pass that exposes every hidden layer.

Layers are named `hidden_1` ... `hidden_n` and `output`, so their variables
have stable paths (`hidden_1/kernel`). The forward pass returns each hidden
layer's pre-activation and activation as well as the logits, which is what
the capture needs; Keras' own `Model.__call__` would hide them.

This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from core.experiment.spec import Activation, InitializerKind, InitializerSpec, ModelSpec

ActivationFn = Callable[[tf.Tensor], tf.Tensor]

ACTIVATION_FUNCTIONS: dict[Activation, ActivationFn] = {
    Activation.SIGMOID: tf.sigmoid,
    Activation.TANH: tf.tanh,
    Activation.RELU: tf.nn.relu,
    Activation.LEAKY_RELU: keras.activations.leaky_relu,
    Activation.ELU: tf.nn.elu,
    Activation.SELU: tf.nn.selu,
    Activation.GELU: keras.activations.gelu,
    Activation.SWISH: tf.nn.silu,
    Activation.SOFTSIGN: tf.nn.softsign,
    Activation.LINEAR: tf.identity,
}


@dataclass(frozen=True)
class Architecture:
    """Everything about a network that shapes its compiled graph.

    Two specs with equal architectures can share one compiled training step;
    initial values and the learning rate are not part of it.
    """

    widths: tuple[int, ...]  # input, hidden..., output
    activations: tuple[Activation, ...]
    batch_norm: bool
    residual: bool
    regression: bool = False  # a linear output and mean squared error

    @classmethod
    def from_spec(
        cls, model: ModelSpec, *, n_features: int, n_outputs: int, regression: bool = False
    ) -> Architecture:
        return cls(
            widths=(n_features, *model.hidden_layers, n_outputs),
            activations=tuple(model.activations),
            batch_norm=model.batch_norm,
            residual=model.residual,
            regression=regression,
        )

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return self.widths[1:-1]

    @property
    def layer_names(self) -> list[str]:
        return [f"hidden_{i}" for i in range(1, len(self.hidden_widths) + 1)] + ["output"]

    def skips(self) -> list[bool]:
        """Whether hidden layer i adds its input back (equal-width neighbours only)."""
        hidden = self.hidden_widths
        return [self.residual and i > 0 and hidden[i - 1] == hidden[i] for i in range(len(hidden))]


@dataclass(frozen=True)
class ForwardPass:
    logits: tf.Tensor
    pre_activations: list[tf.Tensor]
    activations: list[tf.Tensor]


class MLPForward:
    """The MLP's forward pass, over one network's weights (`Network`) or over an
    ensemble's, each member's stacked on a leading axis (core.engine.ensemble), so
    that a member computes what its run alone would."""

    _activation_fns: list[ActivationFn]
    _skips: list[bool]
    # Batch norm of each hidden layer, or None: called as Keras' BatchNormalization is.
    norms: Sequence[Callable[..., tf.Tensor] | None]

    @property
    def layer_variables(self) -> list[tuple[keras.Variable, keras.Variable]]:
        """Kernel and bias of each layer, the output's last."""
        raise NotImplementedError

    def forward(
        self,
        x: tf.Tensor,
        *,
        training: bool,
        mask: tf.Tensor | None = None,
        unroll_small: bool = False,
        perturbations: Sequence[tf.Tensor] = (),
    ) -> ForwardPass:
        """Logits plus each hidden layer's pre-activation and activation.

        `mask` (1 for real rows, 0 for padding) keeps padding out of batch
        norm's moments. `unroll_small` computes layers of a small fan-in term
        by term (see `affine`): equal to float32 rounding, not bit for bit.
        `perturbations` are for networks with recurrent layers; an MLP has none.
        """
        layers = self.layer_variables
        pre_activations, activations = [], []
        h = x
        for i, activation in enumerate(self._activation_fns):
            kernel, bias = layers[i]
            z = affine(h, kernel.value, bias.value, unroll_small=unroll_small)
            norm = self.norms[i]
            if norm is not None:
                z = norm(z, training=training, mask=None if mask is None else mask > 0)
            a = activation(z)
            pre_activations.append(z)
            activations.append(a)
            h = a + h if self._skips[i] else a
        kernel, bias = layers[-1]
        logits = affine(h, kernel.value, bias.value, unroll_small=unroll_small)
        return ForwardPass(logits, pre_activations, activations)


class Network(MLPForward):
    """Dense (+ optional batch norm) layers of an `Architecture`, built and ready."""

    def __init__(self, architecture: Architecture) -> None:
        self.architecture = architecture
        names = architecture.layer_names
        self.dense: list[keras.layers.Dense] = []
        for name, fan_in, units in zip(
            names, architecture.widths[:-1], architecture.widths[1:], strict=True
        ):
            layer = keras.layers.Dense(units, name=name)
            layer.build((None, fan_in))
            self.dense.append(layer)
        self.norms: list[keras.layers.BatchNormalization | None] = []
        for name, units in zip(names[:-1], architecture.hidden_widths, strict=True):
            norm = None
            if architecture.batch_norm:
                norm = keras.layers.BatchNormalization(name=f"{name}_bn")
                norm.build((None, units))
            self.norms.append(norm)
        self._activation_fns = [ACTIVATION_FUNCTIONS[a] for a in architecture.activations]
        self._skips = architecture.skips()
        self.regression = architecture.regression
        self.output_units = architecture.widths[-1]
        self.probe_kinds = architecture.activations
        self.layer_names = names
        self.probe_names = names[:-1]
        self.variable_parts = [(name, part) for name in names for part in ("kernel", "bias")]
        self.timesteps: list[int] = []  # no recurrent layers
        self.conv_kernels: list[int] = []  # no convolutions

    def zero_perturbations(self, batch: int) -> list[tf.Tensor]:
        """None: an MLP has no hidden states through time (core.engine.layered has)."""
        return []

    @property
    def layer_variables(self) -> list[tuple[keras.Variable, keras.Variable]]:
        return [(layer.kernel, layer.bias) for layer in self.dense]

    @property
    def captured_variables(self) -> list[keras.Variable]:
        """Kernel and bias of every dense layer, in layer order."""
        return [v for layer in self.dense for v in (layer.kernel, layer.bias)]

    @property
    def trainable_variables(self) -> list[keras.Variable]:
        norms = [v for norm in self.norms if norm is not None for v in norm.trainable_variables]
        return self.captured_variables + norms

    @property
    def state_variables(self) -> list[keras.Variable]:
        """What a training pass writes besides the trainable variables: batch norm's
        moving statistics."""
        return [v for norm in self.norms if norm is not None for v in norm.non_trainable_variables]

    def initialize(self, initializer: InitializerSpec, *, seed: int) -> None:
        """Give every kernel fresh values from `initializer`, biases zeros, norms identity."""
        for index, layer in enumerate(self.dense):
            make = kernel_initializer(initializer, seed=seed + index)
            layer.kernel.assign(make(tuple(layer.kernel.shape)))
            layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
        for norm in self.norms:
            if norm is not None:
                for variable, value in zip(norm.variables, _NORM_START, strict=True):
                    variable.assign(np.full(variable.shape, value, np.float32))


# Fan-ins up to which `affine(..., unroll_small=True)` sums term by term.
UNROLLED_FAN_IN = 6


def affine(h: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, *, unroll_small: bool) -> tf.Tensor:
    """h @ kernel + bias, as a dense layer computes it (and Keras' `Dense` does).

    Batched when `kernel` has a leading axis (an ensemble's members): h (m, n,
    fan_in), kernel (m, fan_in, units), bias (m, units). With `unroll_small`, a
    fan-in of at most `UNROLLED_FAN_IN` is summed term by term: XLA on a CPU
    fuses that into one loop with what follows, where its dot of a few hundred
    rows by a contraction of 3 to 7 runs as a library call at about 2.5 us, near
    the cost of a whole training step of the tutorial's net.
    """
    batched = len(kernel.shape) == 3
    fan_in = int(kernel.shape[-2])
    if not unroll_small or fan_in > UNROLLED_FAN_IN:
        if batched:
            return tf.matmul(h, kernel) + bias[:, None, :]
        if int(bias.shape[0]) == 1:
            return tf.matmul(h, kernel) + bias  # as Keras adds a bias of one unit
        return tf.nn.bias_add(tf.matmul(h, kernel), bias)
    z = None
    for k in range(fan_in):
        # input k's column times kernel row k: (n, 1) * (units,), or per member
        term = h[..., k : k + 1] * (kernel[:, None, k, :] if batched else kernel[k])
        z = term if z is None else z + term
    return z + (bias[:, None, :] if batched else bias)


# gamma, beta, moving_mean, moving_variance: Keras' order and starting values.
_NORM_START = (1.0, 0.0, 0.0, 1.0)


def kernel_initializer(spec: InitializerSpec, *, seed: int) -> keras.initializers.Initializer:
    """The Keras initializer a spec names, seeded so every call gives the same values."""
    kind = spec.kind
    init = keras.initializers
    seeded: dict[InitializerKind, Callable[[], keras.initializers.Initializer]] = {
        InitializerKind.RANDOM_NORMAL: lambda: init.RandomNormal(spec.mean, spec.stddev, seed=seed),
        InitializerKind.TRUNCATED_NORMAL: lambda: init.TruncatedNormal(
            spec.mean, spec.stddev, seed=seed
        ),
        InitializerKind.RANDOM_UNIFORM: lambda: init.RandomUniform(
            spec.minval, spec.maxval, seed=seed
        ),
        InitializerKind.GLOROT_UNIFORM: lambda: init.GlorotUniform(seed=seed),
        InitializerKind.GLOROT_NORMAL: lambda: init.GlorotNormal(seed=seed),
        InitializerKind.HE_UNIFORM: lambda: init.HeUniform(seed=seed),
        InitializerKind.HE_NORMAL: lambda: init.HeNormal(seed=seed),
        InitializerKind.LECUN_UNIFORM: lambda: init.LecunUniform(seed=seed),
        InitializerKind.LECUN_NORMAL: lambda: init.LecunNormal(seed=seed),
        InitializerKind.ORTHOGONAL: lambda: init.Orthogonal(gain=spec.gain, seed=seed),
        InitializerKind.ZEROS: init.Zeros,
        InitializerKind.ONES: init.Ones,
        InitializerKind.CONSTANT: lambda: init.Constant(spec.value),
    }
    return seeded[kind]()


def layer_parameter_counts(network: Network) -> Sequence[int]:
    return [int(np.prod(layer.kernel.shape)) + int(layer.bias.shape[0]) for layer in network.dense]
