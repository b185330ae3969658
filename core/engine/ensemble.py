"""Several runs of one architecture trained side by side in one compiled graph.

A study's children often differ only in what a compiled graph does not depend
on: the seed (so the data, its order and the starting weights) and the kernel
initializer; or in their hidden activations, which a graph applies member by
member (each to its own slice of a layer). `EnsembleTrainer` trains M such runs
at once: every weight gains a leading member axis, each member's batch goes
through a batched matmul, and the loss is the sum of the members' losses, so
each member's gradient is its own. The optimizers gradwatch offers work
element by element (clipping by value too), so one optimizer over the stacked
weights steps each member as it would step alone; clipping by norm spans a
whole tensor, so runs that use it are never grouped (`core.experiment.grouping`).

The epoch is `core.engine.trainer.CompiledTrainer`'s: its loop carries the stacked
values, and every member's weight, gradient and update statistics per step
(and, capturing every step, its activations on its batch) and its activations
on its own probe batch per epoch come out as one run's would, each member's
from its own slice (`VariableStats` with a segment per member); `train_epoch`
hands back one `EpochArrays` per member, so the engine records each member as a
run of its own. Small networks leave a CPU mostly idle between ops, so M
members cost little more than one: on a plain graph three tutorial networks
take 5.0 ms an epoch, one alone 3.8 ms.

This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from core.engine import chunks
from core.engine.graph_calls import unrolls_probe
from core.engine.network import (
    ACTIVATION_FUNCTIONS,
    ActivationFn,
    Architecture,
    ForwardPass,
    MLPForward,
    kernel_initializer,
)
from core.engine.trainer import (
    EpochArrays,
    EpochGraph,
    TrainerKey,
    VariableStats,
    activation_stats,
    losses_and_hits,
)
from core.experiment.spec import Activation, InitializerSpec

# Keras' BatchNormalization defaults, which the single-run network uses.
_BN_MOMENTUM = 0.99
_BN_EPSILON = 1e-3


class EnsembleTrainer(EpochGraph[list[EpochArrays]], MLPForward):
    """`members` networks of `key`'s architecture, trained together.

    Example:
        >>> trainer = EnsembleTrainer(key, members=4, jit=False)
        >>> trainer.reset([init] * 4, seeds=[1, 2, 3, 4], learning_rate=1e-3)
        >>> per_member = trainer.train_epoch(x, y, probe, batch_size=32)  # x: (4, n, f)
    """

    rows_axis = 1

    def __init__(self, key: TrainerKey, members: int, *, jit: bool) -> None:
        if key.clipnorm is not None:
            raise ValueError("clipping by norm spans a whole tensor: train such runs alone")
        if key.raw:
            raise ValueError("raw capture keeps every tensor: train such runs alone")
        architecture = key.architecture
        if not isinstance(architecture, Architecture):
            raise ValueError("only MLPs train side by side (core.experiment.grouping)")
        self.key = key
        self.members = members
        self.jit = jit
        self.architecture = architecture
        self._binary = architecture.widths[-1] == 1
        # Each member's hidden activations, and per layer each member's kind.
        member_activations = key.member_activations or (architecture.activations,) * members
        if len(member_activations) != members:
            raise ValueError(f"need the hidden activations of {members} members")
        self._kinds = [
            [activations[layer] for activations in member_activations]
            for layer in range(len(architecture.activations))
        ]
        self._activation_fns = [_member_activation(kinds) for kinds in self._kinds]
        self._skips = architecture.skips()
        self.probe_kinds = architecture.activations
        self.probed_layers = len(self.probe_kinds)
        self.timesteps = []  # an MLP's layers have no time steps
        self.kernels: list[keras.Variable] = []
        self.biases: list[keras.Variable] = []
        for name, fan_in, units in zip(
            architecture.layer_names, architecture.widths[:-1], architecture.widths[1:], strict=True
        ):
            self.kernels.append(_variable(f"{name}/kernel", (members, fan_in, units)))
            self.biases.append(_variable(f"{name}/bias", (members, units)))
        self.norms: list[_StackedNorm | None] = [
            _StackedNorm(name, members, units) if architecture.batch_norm else None
            for name, units in zip(
                architecture.layer_names[:-1], architecture.hidden_widths, strict=True
            )
        ]
        self._build_optimizer(self.trainable_variables)
        self._stats = VariableStats(self.captured_variables, fused=jit, members=members)
        self._make_graph_functions(jit=jit)

    @property
    def layer_variables(self) -> list[tuple[keras.Variable, keras.Variable]]:
        """Kernel (M, fan_in, units) and bias (M, units) of each layer, the output's last."""
        return list(zip(self.kernels, self.biases, strict=True))

    @property
    def captured_variables(self) -> list[keras.Variable]:
        """Kernel and bias of every dense layer, in layer order (as for one run)."""
        return [v for pair in self.layer_variables for v in pair]

    @property
    def trainable_variables(self) -> list[keras.Variable]:
        norms = [v for norm in self.norms if norm is not None for v in (norm.gamma, norm.beta)]
        return self.captured_variables + norms

    @property
    def carried_variables(self) -> list[keras.Variable]:
        """The trainable variables, then batch norm's moving statistics."""
        moving = [
            v for norm in self.norms if norm is not None
            for v in (norm.moving_mean, norm.moving_variance)
        ]  # fmt: skip
        return self.trainable_variables + moving

    # ------------------------------------------------------------------ Python API

    def reset(
        self,
        initializers: Sequence[InitializerSpec],
        *,
        seeds: Sequence[int],
        learning_rate: float,
    ) -> None:
        """Start new runs: member i gets fresh weights from `initializers[i]` and `seeds[i]`.

        Each member's kernels are drawn exactly as `core.engine.network.Network.initialize`
        draws a single run's, so a member starts where that run alone would.
        """
        if len(initializers) != self.members or len(seeds) != self.members:
            raise ValueError(f"need {self.members} initializers and seeds")
        for index, kernel in enumerate(self.kernels):
            shape = tuple(kernel.shape[1:])
            kernel.assign(
                np.stack(
                    [
                        np.asarray(kernel_initializer(init, seed=seed + index)(shape), np.float32)
                        for init, seed in zip(initializers, seeds, strict=True)
                    ]
                )
            )
        for bias in self.biases:
            bias.assign(np.zeros(bias.shape, np.float32))
        for norm in self.norms:
            if norm is not None:
                norm.reset()
        self.optimizer.restart(learning_rate)

    def _epoch_of(self, out: dict[str, Any]) -> list[EpochArrays]:
        """Each member's epoch, from the outputs of all of theirs."""
        tensors = {"first_gradients", "last_gradients", "step_weights", "step_gradients"}
        fetched = {name: np.asarray(value) for name, value in out.items() if name not in tensors}
        first = [np.asarray(g) for g in out["first_gradients"]]
        last = [np.asarray(g) for g in out["last_gradients"]]
        probed = self.key.activations
        stepped = probed and self.key.step_capture

        def member_of(name: str, m: int) -> np.ndarray | None:
            return fetched[name][m] if name in fetched else None

        def member(m: int) -> EpochArrays:
            return EpochArrays(
                start_loss=float(fetched["start_loss"][m]),
                start_accuracy=float(fetched["start_accuracy"][m]),
                step_stats=fetched["step_stats"][:, m],
                step_loss=fetched["step_loss"][:, m],
                step_accuracy=fetched["step_accuracy"][:, m],
                step_size=fetched["step_size"],
                end_weight_stats=fetched["end_weight_stats"][m],
                end_activation_stats=member_of("end_activation_stats", m),
                step_activation_stats=fetched["step_activation_stats"][:, m] if stepped else None,
                first_gradients=[g[m] for g in first],
                last_gradients=[g[m] for g in last],
                step_weights=None,
                step_gradients=None,
            )

        return [member(m) for m in range(self.members)]

    def evaluate(
        self, x: np.ndarray, y: np.ndarray, between: chunks.Between | None = None
    ) -> list[tuple[float, float]]:
        """Each member's loss and accuracy on its own (x[m], y[m]), in inference mode."""
        loss, accuracy = self.start_metrics(x, y, between)
        return [(float(a), float(b)) for a, b in zip(loss, accuracy, strict=True)]

    def weights(self) -> list[list[np.ndarray]]:
        """Per member, its kernels and biases in layer order."""
        values = [np.array(v.numpy()) for v in self.captured_variables]
        return [[value[m] for value in values] for m in range(self.members)]

    def predict(self, x: np.ndarray, between: chunks.Between | None = None) -> np.ndarray:
        """Each member's class probabilities on its own x[m]: (M, n) or (M, n, classes)."""
        return self._predict_by_rows(x, between)

    # ------------------------------------------------------------------ graph code

    def _loss_and_accuracy(
        self, y: tf.Tensor, logits: tf.Tensor, mask: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Per member (M,): mean loss and accuracy over the rows where `mask` is 1."""
        loss, hits = losses_and_hits(y, logits, binary=self._binary)
        if mask is None:
            return tf.reduce_mean(loss, axis=1), tf.reduce_mean(hits, axis=1)
        count = tf.reduce_sum(mask)
        return (
            tf.reduce_sum(loss * mask, axis=1) / count,
            tf.reduce_sum(hits * mask, axis=1) / count,
        )

    def _step(
        self, x: tf.Tensor, y: tf.Tensor, mask: tf.Tensor, carried: list[tf.Tensor]
    ) -> dict[str, Any]:
        """One step of every member, from the values its loop carries."""
        trainable = carried[: len(self.trainable_variables)]
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            with self._carrying(carried) as scope:
                forward = self.forward(x, training=True, mask=mask)
            loss, accuracy = self._loss_and_accuracy(y, forward.logits, mask)
            # Members share no weights: the sum's gradient is each member's own.
            total = tf.reduce_sum(loss)
        gradients = tape.gradient(
            total, trainable, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return self._stepped(carried, gradients, scope, forward, (loss, accuracy), mask)

    def _activation_stats(self, forward: ForwardPass, mask: tf.Tensor | None = None) -> tf.Tensor:
        """(M, hidden, len(ACTIVATION_STATS)): each member's layers, each by its own
        activation's kind (a layer's statistics as each kind reads them, each member
        taking its own kind's)."""
        stats = []
        for z, a, kinds in zip(
            forward.pre_activations, forward.activations, self._kinds, strict=True
        ):
            distinct = list(dict.fromkeys(kinds))
            layer = activation_stats(z, a, distinct[0], mask)
            for kind in distinct[1:]:
                mine = _member_mask(kinds, kind)[:, None] > 0
                layer = tf.where(mine, activation_stats(z, a, kind, mask), layer)
            stats.append(layer)
        return tf.stack(stats, axis=-2)

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = self.forward(x, training=False).logits
        return self._loss_and_accuracy(y, logits)

    def _evaluate_sums(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Per member (M,): the loss and the hits summed over its rows of (x, y)."""
        logits = self.forward(x, training=False).logits
        loss, hits = losses_and_hits(y, logits, binary=self._binary)
        return tf.reduce_sum(loss, axis=1), tf.reduce_sum(hits, axis=1)

    def _probe(self, probe: tf.Tensor) -> tf.Tensor:
        """(M, hidden, len(ACTIVATION_STATS)): each member's activations on its own probe."""
        forward = self.forward(probe, training=False, unroll_small=unrolls_probe(self.jit))
        return self._activation_stats(forward)

    def _predict(self, x: tf.Tensor) -> tf.Tensor:
        logits = self.forward(x, training=False).logits
        return tf.sigmoid(logits[..., 0]) if self._binary else tf.nn.softmax(logits)


class _StackedNorm:
    """Batch normalization of every member's units, each with its own moments and scale."""

    def __init__(self, name: str, members: int, units: int) -> None:
        shape = (members, units)
        self.gamma = _variable(f"{name}_bn/gamma", shape)
        self.beta = _variable(f"{name}_bn/beta", shape)
        self.moving_mean = _variable(f"{name}_bn/moving_mean", shape, trainable=False)
        self.moving_variance = _variable(f"{name}_bn/moving_variance", shape, trainable=False)
        self.reset()

    def reset(self) -> None:
        for variable, value in (
            (self.gamma, 1.0),
            (self.beta, 0.0),
            (self.moving_mean, 0.0),
            (self.moving_variance, 1.0),
        ):
            variable.assign(np.full(variable.shape, value, np.float32))

    def __call__(self, z: tf.Tensor, *, training: bool, mask: tf.Tensor | None) -> tf.Tensor:
        """z (M, b, units); `mask` (b,), true for real rows, keeps padding rows out of the
        batch moments (as in Keras' BatchNormalization)."""
        if training:
            weights = tf.ones_like(z[0, :, :1]) if mask is None else tf.cast(mask, z.dtype)[:, None]
            count = tf.reduce_sum(weights)
            mean = tf.reduce_sum(z * weights, axis=1) / count
            variance = tf.reduce_sum(tf.square(z - mean[:, None]) * weights, axis=1) / count
            self.moving_mean.assign(self.moving_mean * _BN_MOMENTUM + mean * (1 - _BN_MOMENTUM))
            self.moving_variance.assign(
                self.moving_variance * _BN_MOMENTUM + variance * (1 - _BN_MOMENTUM)
            )
        else:
            mean, variance = self.moving_mean.value, self.moving_variance.value
        scale = self.gamma * tf.math.rsqrt(variance + _BN_EPSILON)
        return (z - mean[:, None]) * scale[:, None] + self.beta[:, None]


def _variable(path: str, shape: tuple[int, ...], *, trainable: bool = True) -> keras.Variable:
    # Keras names may not hold '/': `hidden_1/kernel` becomes `hidden_1_kernel`.
    return keras.Variable(
        np.zeros(shape, np.float32), trainable=trainable, name=path.replace("/", "_")
    )


def _member_activation(kinds: Sequence[Activation]) -> ActivationFn:
    """A layer's activation of (M, rows, units), member m's by `kinds[m]`.

    Members of other kinds take every kind's activation of the whole layer, each
    times a constant mask of its members, summed: a member's is exactly its own,
    as the others' masked values are zeros (finite: every activation gradwatch
    offers is finite where its input is). Slicing the layer by kind and joining
    the slices took 2.5 times the nodes, forward and back, which a plain graph
    pays at every step."""
    distinct = list(dict.fromkeys(kinds))
    if len(distinct) == 1:
        return ACTIVATION_FUNCTIONS[distinct[0]]
    masks = [_member_mask(kinds, kind)[:, None, None] for kind in distinct]

    def activation(z: tf.Tensor) -> tf.Tensor:
        return tf.add_n(
            [ACTIVATION_FUNCTIONS[k](z) * m for k, m in zip(distinct, masks, strict=True)]
        )

    return activation


def _member_mask(kinds: Sequence[Activation], kind: Activation) -> tf.Tensor:
    """(M,): 1 for the members of `kind`, else 0."""
    return tf.constant([float(k == kind) for k in kinds], tf.float32)
