"""The optimizer step: a spec's Keras optimizer, stepping a network's variables as one vector.

Keras steps each variable on its own: a dozen ops of the graph a variable, and as much
Python to trace them. On a plain graph every op costs a few microseconds of the runtime's
dispatch, so for the small networks gradwatch mostly trains the optimizer was a third of
a step's ops and of the tracing that makes a new network's first run slow. Every
optimizer gradwatch offers works element by element (clipping by value and AdamW's decay
too), so `OptimizerStep` hands Keras one vector, the variables end to end, and splits the
result back: the same arithmetic on the same numbers in a fifth of the ops. It equals
Keras's own step of each variable to float32 rounding (an element's last bit may differ
where the vector puts it in a SIMD lane and a variable of its own in a scalar tail, as a
square root or a division may round differently there), and a spec steps the same way
every time. Clipping by norm spans a whole variable: such runs step variable by variable.

This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from core.experiment.spec import OptimizerKind


@functools.cache
def default_learning_rate(kind: OptimizerKind) -> float:
    """Keras' own default learning rate for an optimizer, read once: building an
    optimizer to read it took 2 ms of every run that left the rate to Keras."""
    return float(_optimizer_class(kind)().learning_rate)


def _optimizer_class(kind: OptimizerKind) -> type[keras.optimizers.Optimizer]:
    return {
        OptimizerKind.RMSPROP: keras.optimizers.RMSprop,
        OptimizerKind.SGD: keras.optimizers.SGD,
        OptimizerKind.ADAM: keras.optimizers.Adam,
        OptimizerKind.ADAMW: keras.optimizers.AdamW,
        OptimizerKind.ADAGRAD: keras.optimizers.Adagrad,
        OptimizerKind.ADADELTA: keras.optimizers.Adadelta,
        OptimizerKind.ADAMAX: keras.optimizers.Adamax,
        OptimizerKind.NADAM: keras.optimizers.Nadam,
    }[kind]


def make_optimizer(
    kind: OptimizerKind,
    *,
    momentum: float,
    nesterov: bool,
    clipnorm: float | None,
    clipvalue: float | None,
) -> keras.optimizers.Optimizer:
    """The Keras optimizer of these options (momentum: SGD and RMSprop only)."""
    options: dict[str, Any] = {"clipnorm": clipnorm, "clipvalue": clipvalue}
    if kind is OptimizerKind.SGD:
        options |= {"momentum": momentum, "nesterov": nesterov}
    elif kind is OptimizerKind.RMSPROP:
        options |= {"momentum": momentum}
    return _optimizer_class(kind)(**options)


@dataclass(frozen=True)
class Stepped:
    """One step of a network's variables, each end to end in one vector: their values
    before it, their gradients, their values after it; and each variable's value after."""

    before: tf.Tensor
    gradients: tf.Tensor
    after: tf.Tensor
    values: list[tf.Tensor]

    def head(self, size: int) -> Stepped:
        """The vectors' first `size` elements: the leading variables' (the captured ones)."""
        if size == int(self.before.shape[0]):
            return self
        return Stepped(self.before[:size], self.gradients[:size], self.after[:size], self.values)


class OptimizerStep:
    """`optimizer` stepping `variables`, one vector of them unless it clips by norm.

    Example:
        >>> step = OptimizerStep(make_optimizer(...), network.trainable_variables)
        >>> step.restart(learning_rate=1e-3)  # a new run: the optimizer's state as new
        >>> stepped = step.apply(gradients, values)  # in graph code, in a loop carrying values
    """

    def __init__(self, optimizer: keras.optimizers.Optimizer, variables: Sequence[Any]) -> None:
        self.optimizer = optimizer
        self.variables = list(variables)
        self._shapes = [tuple(int(d) for d in v.shape) for v in self.variables]
        sizes = [int(np.prod(shape)) for shape in self._shapes]
        # The vector the optimizer steps; None: it steps the variables themselves.
        self._vector: keras.Variable | None = None
        if optimizer.clipnorm is None:
            self._vector = keras.Variable(
                np.zeros(sum(sizes), np.float32), name="parameters", trainable=False
            )
            optimizer.build([self._vector])
        else:
            optimizer.build(self.variables)
        # Optimizer slots start at kind-specific values (Adagrad: 0.1), so keep them
        # to restore rather than assuming zeros.
        self._start = [np.array(v.numpy()) for v in optimizer.variables]

    def restart(self, learning_rate: float) -> None:
        """The optimizer's state as new, for a new run at `learning_rate`."""
        for variable, start in zip(self.optimizer.variables, self._start, strict=True):
            variable.assign(start)
        self.optimizer.learning_rate = learning_rate

    def apply(self, gradients: Sequence[tf.Tensor], values: Sequence[tf.Tensor]) -> Stepped:
        """Step every variable by its gradient from `values`, the values a loop carries for
        the variables (it writes them once, at its end); graph code. The step's values are
        returned, not written (clipping by norm, which Keras applies to the variables
        themselves, writes them the values first)."""
        before, flat_gradients = flat(values), flat(gradients)
        if self._vector is None:
            for variable, value in zip(self.variables, values, strict=True):
                variable.assign(value)
            self.optimizer.apply(list(gradients), self.variables)
            after = [tf.convert_to_tensor(v) for v in self.variables]
            return Stepped(before, flat_gradients, flat(after), after)
        self._vector.assign(before)
        self.optimizer.apply([flat_gradients], [self._vector])
        vector = tf.convert_to_tensor(self._vector)  # one read, for the split and the update
        return Stepped(before, flat_gradients, vector, unflat(vector, self._shapes))


def flat(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """The tensors' values end to end, (total size,)."""
    return tf.concat([t if len(t.shape) == 1 else tf.reshape(t, [-1]) for t in tensors], axis=0)


def unflat(vector: tf.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[tf.Tensor]:
    """`vector` cut into tensors of `shapes`, in order: what `flat` joined."""
    parts = tf.split(vector, [int(np.prod(shape)) for shape in shapes])
    return [
        part if len(shape) == 1 else tf.reshape(part, shape)
        for part, shape in zip(parts, shapes, strict=True)
    ]
