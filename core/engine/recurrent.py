"""SimpleRNN, LSTM and GRU over a Keras cell's own weights, in loops of our own.

The loops add a zero perturbation to each hidden state h_t. Differentiating the
loss with respect to those zeros in the training step's own backward pass gives
dL/dh_t for every t at the cost of one addition per step: the norms
||dL/dh_t|| a result stores under `through_time`.

`tests/core/test_layered.py` checks the loops against
keras.layers.SimpleRNN/LSTM/GRU with the same weights, and dL/dh_t against a
GradientTape on the same weights unrolled by hand.

This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from core.engine.blocks import Block, Pass, activation_fn, probe_kind
from core.experiment.layer_configs import (
    GRUConfig,
    Initializer,
    KerasActivation,
    LSTMConfig,
    SimpleRNNConfig,
    _RecurrentConfig,
)
from core.experiment.layer_shapes import LayerShape, weight_parts
from core.experiment.spec import Activation


class Recurrent(Block):
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

    def __call__(self, h: tf.Tensor, state: Pass) -> tf.Tensor:
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
