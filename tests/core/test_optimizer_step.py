"""The optimizer steps a network's variables as one vector, as Keras steps each on its own."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.engine.optimizer import OptimizerStep, make_optimizer
from core.experiment.spec import OptimizerKind

SHAPES = [(3, 5), (5,), (5, 4), (4,), (4, 1), (1,)]  # kernels and biases of a small MLP
OPTIONS = [
    (kind, {"momentum": 0.0, "nesterov": False, "clipnorm": None, "clipvalue": None})
    for kind in OptimizerKind
] + [
    (OptimizerKind.SGD, {"momentum": 0.9, "nesterov": True, "clipnorm": None, "clipvalue": None}),
    (
        OptimizerKind.RMSPROP,
        {"momentum": 0.5, "nesterov": False, "clipnorm": None, "clipvalue": 0.01},
    ),
    (OptimizerKind.ADAM, {"momentum": 0.0, "nesterov": False, "clipnorm": 0.05, "clipvalue": None}),
]


def _variables(seed: int) -> list[keras.Variable]:
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]


@pytest.mark.parametrize(("kind", "options"), OPTIONS, ids=lambda o: str(o))
@pytest.mark.parametrize("jit", [False, True], ids=["plain", "xla"])
def test_one_vector_steps_each_variable_as_keras_does(
    kind: OptimizerKind, options: dict, jit: bool
) -> None:
    alone = _variables(seed=1)
    keras_own = make_optimizer(kind, **options)
    keras_own.build(alone)
    keras_own.learning_rate = 0.01
    together = _variables(seed=1)
    step = OptimizerStep(make_optimizer(kind, **options), together)
    step.restart(learning_rate=0.01)
    rng = np.random.default_rng(2)
    gradient_steps = [
        [tf.constant(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]
        for _ in range(4)
    ]

    @tf.function(jit_compile=jit, autograph=False)
    def keras_step(gradients: list[tf.Tensor]) -> None:
        keras_own.apply(gradients, alone)

    @tf.function(jit_compile=jit, autograph=False)
    def vector_step(gradients: list[tf.Tensor], values: list[tf.Tensor]) -> list[tf.Tensor]:
        return step.apply(gradients, values).values

    values = [v.value for v in together]  # carried from step to step, as an epoch's loop does
    for gradients in gradient_steps:
        keras_step(gradients)
        values = vector_step(gradients, values)
        for mine, theirs in zip(values, alone, strict=True):
            # The same arithmetic element by element; an element's last bit may differ
            # where one layout computes it in a vector lane and the other in a scalar tail.
            # Where a variable nears zero, a last-bit difference in an increment is more
            # units in its last place: compare against the weights' scale (~1).
            np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


def test_restart_gives_the_optimizer_its_starting_state() -> None:
    variables = _variables(seed=3)
    # Adagrad's accumulators start at 0.1, not zero: restart must restore that
    step = OptimizerStep(
        make_optimizer(
            OptimizerKind.ADAGRAD, momentum=0.0, nesterov=False, clipnorm=None, clipvalue=None
        ),
        variables,
    )
    slots = [v for v in step.optimizer.variables if "learning_rate" not in v.path]
    start = [v.numpy().copy() for v in slots]
    step.restart(learning_rate=0.1)
    gradients = [tf.ones(shape) for shape in SHAPES]
    tf.function(
        lambda: step.apply(gradients, [v.value for v in variables]).values, autograph=False
    )()
    moved = zip(slots, start, strict=True)
    assert any(not np.array_equal(variable.numpy(), value) for variable, value in moved)
    step.restart(learning_rate=0.1)
    for variable, value in zip(slots, start, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
