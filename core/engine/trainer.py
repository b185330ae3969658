"""A compiled training loop that captures per-layer statistics inside the graph.

One call of `CompiledTrainer.train_epoch` runs a whole epoch as a single
TensorFlow graph function, XLA-compiled when the trainer is built with
`jit=True` (core/engine/graph_cache.py chooses when that pays): the epoch's loop
carries the network's values from step to step, and every optimizer step's
weight, gradient and update statistics are computed in the graph (on a small
plain graph, from what each step records, once at the epoch's end), so nothing
is pulled to Python per step. Python sees one bundle of arrays per epoch,
which is where hooks run.

A trainer holds its variables; `reset` gives them a new run's starting
values, so a process that trains many runs of one architecture compiles its
graph once (see core/engine/graph_cache.py).

This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from core.engine import chunks
from core.engine.graph_calls import graph_function, unrolls_probe
from core.engine.layered import LayeredArchitecture, build_network
from core.engine.network import Architecture, ForwardPass
from core.engine.optimizer import OptimizerStep, Stepped, flat, make_optimizer, unflat
from core.experiment.result import TENSOR_STATS
from core.experiment.spec import (
    BOUNDED_ACTIVATIONS,
    DYING_ACTIVATIONS,
    RELU_FAMILY,
    Activation,
    InitializerSpec,
    OptimizerKind,
)

WEIGHT_STATS = TENSOR_STATS[:4]
ACTIVATION_STATS = ("mean", "std", "saturated", "dead", "negative")

# A unit is saturated where its activation's slope is under this fraction of
# the activation's steepest slope: gradients through it are cut tenfold.
SATURATION_SLOPE = 0.1
# A trainer's evaluation and prediction run op by op for this many calls, then as traced
# graphs (core.engine.graph_calls.graph_function): the two runs a network's plain graph
# trains, without validation, before XLA's (traced as it compiles) takes its later
# ones. Op by op, a call costs a few milliseconds; tracing it, 30-50 ms.
EAGER_CALLS = 2
# An epoch on a plain graph reduces its steps' statistics at its end while what its
# steps record for them holds at most this many floats (16 MiB): see `VariableStats`.
DEFERRED_FLOATS = 1 << 22


@dataclass(frozen=True)
class TrainerKey:
    """What a compiled graph depends on; runs with equal keys share one trainer."""

    architecture: Architecture | LayeredArchitecture
    optimizer: OptimizerKind
    momentum: float
    nesterov: bool
    clipnorm: float | None
    clipvalue: float | None
    step_capture: bool
    raw: bool
    # Whether the graph forward-passes the probe batch for activation
    # statistics; without them it skips those passes altogether.
    activations: bool = True
    # An ensemble whose members' hidden activations differ: each member's, in order
    # (core.engine.ensemble); () where every member has the architecture's.
    member_activations: tuple[tuple[Activation, ...], ...] = ()


@dataclass
class EpochArrays:
    """What one compiled epoch hands back to Python (NumPy, fetched lazily)."""

    start_loss: float  # on the whole epoch's data, before its first step
    start_accuracy: float
    step_stats: np.ndarray  # (steps, variables, len(TENSOR_STATS)), weights before each step
    step_loss: np.ndarray  # (steps,)
    step_accuracy: np.ndarray  # (steps,)
    step_size: np.ndarray  # (steps,) samples in each batch
    end_weight_stats: np.ndarray  # (variables, len(WEIGHT_STATS)) after the last step
    # (hidden, len(ACTIVATION_STATS)) on the probe after the last step, capturing every epoch
    end_activation_stats: np.ndarray | None
    # (steps, hidden, 5) when capturing every step: each step's batch, before the step
    step_activation_stats: np.ndarray | None
    first_gradients: list[tf.Tensor]  # per variable, at the epoch's first step
    step_weights: list[np.ndarray] | None  # raw: per variable (steps, *shape), before each step
    step_gradients: list[np.ndarray] | None  # raw: per variable (steps, *shape)
    last_gradients: list[tf.Tensor] | None = None  # per variable, at the epoch's last step
    # |dL/dh_t| of each step, the recurrent layers' time steps end to end: (steps, sum of T)
    step_through_time: np.ndarray | None = None
    # each convolution's |dL/dW| per output channel, the layers end to end: (steps, filters)
    step_channels: np.ndarray | None = None


def losses_and_hits(
    y: tf.Tensor, logits: tf.Tensor, *, binary: bool, regression: bool = False
) -> tuple[tf.Tensor, tf.Tensor]:
    """Each sample's loss and whether it is classified right (1.0 or 0.0).

    Binary: one logit per sample (sigmoid); else one per class (softmax). Any
    leading axes (an ensemble's members) are kept. Regression: the squared
    error of one linear output, and NaN for the hits (a regression run has no
    accuracy: it is stored as null).
    """
    # (squeezed, not sliced: the same numbers in 1 op and a 2-op gradient, not 4 and 6)
    if regression:
        error = tf.square(tf.squeeze(logits, -1) - y)
        return error, tf.fill(tf.shape(error), math.nan)
    if binary:
        logit = tf.squeeze(logits, -1)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y, logit.dtype), logits=logit)
        hits = tf.equal(tf.cast(logit > 0, y.dtype), y)
    else:
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        hits = tf.equal(tf.argmax(logits, axis=-1, output_type=y.dtype), y)
    return loss, tf.cast(hits, tf.float32)


class EpochGraph(chunks.EpochCalls[chunks.Epoch]):
    """The graph code of an epoch in one call, for a run alone (`CompiledTrainer`) and an
    ensemble (core.engine.ensemble, its members on a leading axis): the rows on
    `rows_axis`, padded to whole batches, then the steps of `_run_steps` between the
    start's and the end's evaluation and probe."""

    # The layers the probe reports on, the kind of each, and the recurrent layers' time steps.
    probed_layers: int
    probe_kinds: Sequence[Activation]
    timesteps: list[int]
    # Where each convolution's kernel is among `captured_variables` (none: no
    # per-channel gradient norms).
    conv_kernels: Sequence[int] = ()
    # The captured variables' statistics, all at once: a small plain graph's steps
    # record what the epoch reduces at its end.
    _stats: VariableStats

    @property
    def captured_variables(self) -> list[keras.Variable]:
        """The variables whose statistics each step records, in order."""
        raise NotImplementedError

    def probe_now(self, probe: np.ndarray) -> np.ndarray | None:
        """The activation statistics on `probe` now (a run's start), when probing: run
        op by op, as once a run it costs less than tracing it into a graph would."""
        if not self.key.activations:
            return None
        return np.asarray(self._probe(tf.convert_to_tensor(probe)))

    def _make_graph_functions(self, *, jit: bool) -> None:
        """The graph functions `chunks.EpochCalls` calls, of the methods named alike."""
        self._epoch_fn = graph_function(self._train_epoch, jit=jit)
        # An epoch too long for one call (core.engine.chunks) runs in these.
        self._chunk_fn = graph_function(self._train_chunk, jit=jit)
        self._edge_fn = graph_function(self._edge, jit=jit)
        # Called a few times a run: tracing alone is cheaper than compiling, and running
        # op by op cheaper still for a network's first run.
        rows, eager = self.rows_axis, EAGER_CALLS
        self._sums_fn = graph_function(
            self._evaluate_sums, jit=False, rows_axis=rows, eager_calls=eager
        )
        self._predict_fn = graph_function(
            self._predict, jit=False, rows_axis=rows, eager_calls=eager
        )

    def _build_optimizer(self, variables: list[keras.Variable]) -> None:
        """The key's optimizer, built for `variables`, and its state as new."""
        key = self.key
        self.optimizer = OptimizerStep(
            make_optimizer(
                key.optimizer,
                momentum=key.momentum,
                nesterov=key.nesterov,
                clipnorm=key.clipnorm,
                clipvalue=key.clipvalue,
            ),
            variables,
        )

    @property
    def carried_variables(self) -> list[keras.Variable]:
        """The variables whose values an epoch's loop carries from step to step, read
        before its first and written after its last: the trainable ones, then what a
        training pass writes besides. A plain graph would otherwise read each variable
        twice a step and write it once, a quarter of a small network's ops."""
        raise NotImplementedError

    def _step(
        self, x: tf.Tensor, y: tf.Tensor, mask: tf.Tensor, carried: list[tf.Tensor]
    ) -> dict[str, Any]:
        """One optimizer step on the batch rows where `mask` is 1, from the values of
        `carried_variables` in `carried`; it returns their new values as "carried"."""
        raise NotImplementedError

    def _stepped(
        self,
        carried: list[tf.Tensor],
        gradients: list[tf.Tensor],
        scope: keras.StatelessScope,
        forward: ForwardPass,
        metrics: tuple[tf.Tensor, tf.Tensor],
        mask: tf.Tensor,
    ) -> dict[str, Any]:
        """What `_step` returns, once the pass (`forward`, in `scope`: `_carrying`) gave
        the loss and accuracy (`metrics`) and the gradients of the carried trainable
        values: the optimizer's step from them, and the state as the pass left it."""
        trainable = carried[: len(gradients)]
        before = trainable[: len(self.captured_variables)]
        stepped = self.optimizer.apply(gradients, trainable)
        state = [scope.get_current_value(v) for v in self.carried_variables[len(trainable) :]]
        stepped = stepped.head(self._stats.size)
        step = {
            "stepped": stepped,
            "loss": metrics[0],
            "accuracy": metrics[1],
            "size": tf.reduce_sum(mask),
            "before": before,
            "gradients": gradients[: len(before)],
            "flat_gradients": stepped.gradients,
            "carried": [*stepped.values, *state],
        }
        if self._step_activations:
            step["activations"] = self._activation_stats(forward, mask)
        return step

    @contextmanager
    def _carrying(self, carried: list[tf.Tensor]) -> Iterator[keras.StatelessScope]:
        """Graph code in which the network's variables read as `carried`, and what it
        writes to them is kept in the scope it yields, not written (Keras' stateless
        scope). Writing a variable the loop does not carry would be lost: an error."""
        variables = self.carried_variables
        with keras.StatelessScope(
            state_mapping=list(zip(variables, carried, strict=True))
        ) as scope:
            yield scope
        known = {id(v) for v in variables}
        if any(key not in known for key in scope.state_mapping):
            raise RuntimeError("a training pass wrote a variable its epoch's loop does not carry")

    @property
    def _step_activations(self) -> bool:
        """Whether each step records activation statistics (step points, probing on)."""
        return self.key.step_capture and self.key.activations

    def _step_stats(self, step: dict[str, Any]) -> tf.Tensor:
        """The step's weight, gradient and update statistics, from what `_step` returned."""
        return self._stats.step(step["stepped"], step["before"], step["gradients"])

    def _weight_stats(self) -> tf.Tensor:
        """(variables, 4), or (M, variables, 4) for an ensemble: the weights now."""
        return self._stats.weights([v.value for v in self.captured_variables])

    def _activation_stats(self, forward: ForwardPass, mask: tf.Tensor | None = None) -> tf.Tensor:
        """(probed layers, len(ACTIVATION_STATS)), or (M, ...) for an ensemble: each probed
        layer's statistics in `forward`, over the rows where `mask` is 1 (all when None).

        On the probe batch at a run's start and an epoch's end (`_probe`); at a step point, on
        the step's own training batch, from the forward pass the step trains on (`_step`).
        """
        stats = [
            activation_stats(z, a, kind, mask)
            for z, a, kind in zip(
                forward.pre_activations, forward.activations, self.probe_kinds, strict=True
            )
        ]
        if not stats:  # a layer list whose layers apply no activation (MLPs always do)
            return tf.zeros((0, len(ACTIVATION_STATS)))
        return tf.stack(stats, axis=-2)

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        raise NotImplementedError

    def _evaluate_sums(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        raise NotImplementedError

    def _predict(self, x: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _train_epoch(
        self, x: tf.Tensor, y: tf.Tensor, probe: tf.Tensor, batch_size: int
    ) -> dict[str, Any]:
        axis = self.rows_axis
        n = int(x.shape[axis])
        steps = -(-n // batch_size)
        # A short last batch is padded and masked out of the loss (and of batch
        # norm's moments), so a single step graph serves every batch: tracing
        # and compiling it is most of a cold run's cost.
        padding = steps * batch_size - n
        pad = [[0, 0]] * len(x.shape)
        pad[axis] = [0, padding]
        x = tf.pad(x, pad)
        y = tf.pad(y, pad[: len(y.shape)])
        mask = tf.concat([tf.ones([n]), tf.zeros([padding])], axis=0)
        real = (slice(None),) * axis + (slice(None, n),)
        start_loss, start_accuracy = self._evaluate(x[real], y[real])
        out = self._run_steps(x, y, mask, batch_size, count=steps)
        out |= {
            "start_loss": start_loss,
            "start_accuracy": start_accuracy,
            # (variables, 4), or (M, variables, 4) for an ensemble
            "end_weight_stats": self._weight_stats(),
        }
        # An epoch starts where the one before ended, so only its end is probed (a
        # run's start: `probe_now`); at step points each step's batch tells instead.
        if self.key.activations and not self.key.step_capture:
            out["end_activation_stats"] = self._probe(probe)
        return out

    def _run_steps(
        self,
        x: tf.Tensor,
        y: tf.Tensor,
        mask: tf.Tensor,
        batch_size: int,
        *,
        count: int | tf.Tensor,
    ) -> dict[str, Any]:
        """Steps 0 .. count - 1 over the padded rows of x, y, each recorded."""
        axis = self.rows_axis
        slots = int(x.shape[axis]) // batch_size
        captured = self.captured_variables

        def batch(t: tf.Tensor, start: tf.Tensor) -> tf.Tensor:
            """The `batch_size` rows of `t` from row `start` on."""
            begin: list[Any] = [0] * len(t.shape)
            begin[axis] = start
            size = [int(d) for d in t.shape]
            size[axis] = batch_size
            return tf.slice(t, begin, size)

        def body(
            i: tf.Tensor,
            arrays: dict[str, Any],
            first: tf.Tensor,
            _: tf.Tensor,
            values: list[tf.Tensor],
        ) -> Any:
            start = i * batch_size
            rows = (batch(x, start), batch(y, start), tf.slice(mask, [start], [batch_size]))
            step = self._step(*rows, values)
            # the step's gradients end to end: one loop variable, one select
            gradients = step["flat_gradients"]
            first = tf.where(tf.equal(i, 0), gradients, first)
            return i + 1, self._record(arrays, i, step), first, gradients, step["carried"]

        shapes = [tuple(int(d) for d in v.shape) for v in captured]
        zeros = tf.zeros([sum(int(np.prod(shape)) for shape in shapes)])
        carried = self.carried_variables
        start = [tf.convert_to_tensor(v) for v in carried]
        arrays = self._epoch_arrays(steps=slots, lead=x.shape[:axis])
        _, arrays, first_gradients, last_gradients, values = tf.while_loop(
            lambda i, *_: i < count,
            body,
            (tf.constant(0), arrays, zeros, zeros, start),
            maximum_iterations=slots,
        )
        for variable, value in zip(carried, values, strict=True):
            variable.assign(value)
        stacked = {name: ta.stack() for name, ta in arrays.items() if not isinstance(ta, list)}
        if "columns" in stacked:  # what each step recorded, reduced now
            stacked["stats"] = self._stats.of_columns(stacked.pop("columns"))
        out = {
            "step_stats": stacked["stats"],
            "step_loss": stacked["loss"],
            "step_accuracy": stacked["accuracy"],
            "step_size": stacked["size"],
            "first_gradients": unflat(first_gradients, shapes),
            "last_gradients": unflat(last_gradients, shapes),
            "step_weights": [ta.stack() for ta in arrays.get("weights", [])],
            "step_gradients": [ta.stack() for ta in arrays.get("gradients", [])],
        }
        if "activations" in stacked:
            out["step_activation_stats"] = stacked["activations"]
        if "through_time" in stacked:
            out["step_through_time"] = stacked["through_time"]
        if "channels" in stacked:
            out["step_channels"] = stacked["channels"]
        return out

    def _epoch_arrays(self, *, steps: int, lead: Sequence[int]) -> dict[str, Any]:
        """TensorArrays, one slot per step, for everything a step records; `lead`: the
        axes before the rows (an ensemble's members), which a step's figures keep."""

        def array(shape: tuple[int, ...]) -> tf.TensorArray:
            return tf.TensorArray(tf.float32, size=steps, element_shape=shape)

        per_row = tuple(int(d) for d in lead)
        captured = self.captured_variables
        arrays: dict[str, Any] = {
            "loss": array(per_row),
            "accuracy": array(per_row),
            "size": array(()),
        }
        columns = self._stats.deferred_columns(steps)
        if columns:
            arrays["columns"] = array(columns)
        else:
            arrays["stats"] = array((*per_row, len(captured), len(TENSOR_STATS)))
        if self.timesteps:
            arrays["through_time"] = array((sum(self.timesteps),))
        if self.conv_kernels:
            filters = sum(int(captured[k].shape[-1]) for k in self.conv_kernels)
            arrays["channels"] = array((filters,))
        if self.key.step_capture:
            if self.key.activations:
                arrays["activations"] = array((*per_row, self.probed_layers, len(ACTIVATION_STATS)))
            if self.key.raw:
                arrays["weights"] = [array(tuple(v.shape)) for v in captured]
                arrays["gradients"] = [array(tuple(v.shape)) for v in captured]
        return arrays

    def _record(self, arrays: dict[str, Any], i: Any, step: dict[str, Any]) -> dict[str, Any]:
        """`arrays` with step `i` written in (TensorArrays are values: rebind them)."""
        out = dict(arrays)
        # "activations": the step's own forward pass on its training batch (`_step`).
        names = ("loss", "accuracy", "size", "through_time", "activations", "channels")
        for name in names:
            if name in arrays:
                out[name] = arrays[name].write(i, step[name])
        if "stats" in arrays:
            out["stats"] = arrays["stats"].write(i, self._step_stats(step))
        if "columns" in arrays:
            out["columns"] = arrays["columns"].write(i, self._stats.columns(step["stepped"]))
        if "weights" in arrays:
            out["weights"] = [
                ta.write(i, w) for ta, w in zip(arrays["weights"], step["before"], strict=True)
            ]
            out["gradients"] = [
                ta.write(i, g) for ta, g in zip(arrays["gradients"], step["gradients"], strict=True)
            ]
        return out


class CompiledTrainer(EpochGraph[EpochArrays]):
    """A network, its optimizer and the compiled functions that train and probe it."""

    members = 1  # one run (core.engine.ensemble trains several)
    _stats: VariableStats
    rows_axis = 0

    def __init__(self, key: TrainerKey, *, jit: bool) -> None:
        self.key = key
        self.jit = jit
        self.network = build_network(key.architecture)
        self._build_optimizer(self.network.trainable_variables)
        self._binary = self.network.output_units == 1
        self._regression = self.network.regression
        self._stats = VariableStats(self.network.captured_variables, fused=jit)
        self.probe_kinds = self.network.probe_kinds
        self.probed_layers = len(self.probe_kinds)
        self.timesteps = self.network.timesteps
        self.conv_kernels = self.network.conv_kernels
        self._make_graph_functions(jit=jit)
        self.runs = 0

    # ------------------------------------------------------------------ Python API

    def reset(self, initializer: InitializerSpec, *, seed: int, learning_rate: float) -> None:
        """Start a new run: fresh weights from `seed`, optimizer state as new."""
        self.network.initialize(initializer, seed=seed)
        self.optimizer.restart(learning_rate)
        self.runs += 1

    def _epoch_of(self, out: dict[str, Any]) -> EpochArrays:
        raw = self.key.raw and self.key.step_capture
        probed = self.key.activations
        return EpochArrays(
            start_loss=float(out["start_loss"]),
            start_accuracy=float(out["start_accuracy"]),
            step_stats=np.asarray(out["step_stats"]),
            step_loss=np.asarray(out["step_loss"]),
            step_accuracy=np.asarray(out["step_accuracy"]),
            step_size=np.asarray(out["step_size"]),
            end_weight_stats=np.asarray(out["end_weight_stats"]),
            end_activation_stats=_fetched(out, "end_activation_stats"),
            step_activation_stats=(
                np.asarray(out["step_activation_stats"])
                if self.key.step_capture and probed
                else None
            ),
            first_gradients=out["first_gradients"],
            last_gradients=out["last_gradients"],
            step_weights=[np.asarray(t) for t in out["step_weights"]] if raw else None,
            step_gradients=[np.asarray(t) for t in out["step_gradients"]] if raw else None,
            step_through_time=(
                np.asarray(out["step_through_time"]) if "step_through_time" in out else None
            ),
            step_channels=np.asarray(out["step_channels"]) if "step_channels" in out else None,
        )

    def evaluate(
        self, x: np.ndarray, y: np.ndarray, between: chunks.Between | None = None
    ) -> tuple[float, float]:
        """Loss and accuracy on the whole of (x, y), in inference mode."""
        loss, accuracy = self.start_metrics(x, y, between)
        return float(loss), float(accuracy)

    def weights(self) -> list[np.ndarray]:
        return [np.array(v.numpy()) for v in self.network.captured_variables]

    def predict(self, x: np.ndarray, between: chunks.Between | None = None) -> np.ndarray:
        """Class probabilities: (n,) of class 1 for binary, else (n, classes)."""
        return self._predict_by_rows(x, between)

    # ------------------------------------------------------------------ graph code

    def _loss_and_accuracy(
        self, y: tf.Tensor, logits: tf.Tensor, mask: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Mean loss and accuracy over the samples where `mask` is 1 (all when None)."""
        loss, hits = losses_and_hits(y, logits, binary=self._binary, regression=self._regression)
        if mask is None:
            return tf.reduce_mean(loss), tf.reduce_mean(hits)
        count = tf.reduce_sum(mask)
        return tf.reduce_sum(loss * mask) / count, tf.reduce_sum(hits * mask) / count

    @property
    def captured_variables(self) -> list[keras.Variable]:
        return self.network.captured_variables

    @property
    def carried_variables(self) -> list[keras.Variable]:
        return self.network.trainable_variables + self.network.state_variables

    def _step(
        self, x: tf.Tensor, y: tf.Tensor, mask: tf.Tensor, carried: list[tf.Tensor]
    ) -> dict[str, Any]:
        network = self.network
        trainable = carried[: len(network.trainable_variables)]
        # Zeros added to recurrent layers' hidden states: their gradient is dL/dh_t.
        perturbations = network.zero_perturbations(int(x.shape[0]))
        with tf.GradientTape() as tape:
            tape.watch([*trainable, *perturbations])
            with self._carrying(carried) as scope:
                forward = network.forward(x, training=True, mask=mask, perturbations=perturbations)
            loss, accuracy = self._loss_and_accuracy(y, forward.logits, mask)
        gradients, through_time = tape.gradient(
            loss, (trainable, perturbations), unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        step = self._stepped(carried, gradients, scope, forward, (loss, accuracy), mask)
        if perturbations:
            # ||dL/dh_t|| over the batch and the units, each layer's steps end to end
            step["through_time"] = tf.concat(
                [tf.sqrt(tf.reduce_sum(tf.square(g), axis=[0, 2])) for g in through_time], 0
            )
        if self.conv_kernels:
            step["channels"] = channel_norms([gradients[k] for k in self.conv_kernels])
        return step

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        forward = self.network.forward(x, training=False)
        return self._loss_and_accuracy(y, forward.logits)

    def _evaluate_sums(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The loss and the hits summed over the rows of (x, y)."""
        forward = self.network.forward(x, training=False)
        loss, hits = losses_and_hits(
            y, forward.logits, binary=self._binary, regression=self._regression
        )
        return tf.reduce_sum(loss), tf.reduce_sum(hits)

    def _probe(self, x: tf.Tensor) -> tf.Tensor:
        """(hidden, len(ACTIVATION_STATS)): the network now, on the probe batch `x`."""
        # Every epoch that captures its end probes it: make it cheap.
        forward = self.network.forward(x, training=False, unroll_small=unrolls_probe(self.jit))
        return self._activation_stats(forward)

    def _predict(self, x: tf.Tensor) -> tf.Tensor:
        logits = self.network.forward(x, training=False).logits
        if self._regression:
            return logits[:, 0]
        return tf.sigmoid(logits[:, 0]) if self._binary else tf.nn.softmax(logits)


class VariableStats:
    """Per-variable statistics of all captured variables at once; for an ensemble
    (`members` > 1, each variable's leading axis), each member's of its own slice.

    Without XLA every TensorFlow op costs a few microseconds of dispatch, so
    the variables are flattened into one vector and reduced by segment, one
    segment per variable (and member): a dozen ops whatever the depth. Better
    still, an epoch's steps each record that vector's weights, gradients and
    update (`columns`), and the epoch reduces all its steps' at its end in those
    dozen ops (`of_columns`): with their constants, they were a fifth of a small
    plain graph's step. That holds an epoch's vectors, so only while they are at
    most `DEFERRED_FLOATS` floats; past that each step reduces its own. Under XLA
    per-variable reductions fuse into the step's kernels, and segment reductions
    (scatters) would be the slower choice for large layers, so each variable is
    reduced on its own.
    """

    def __init__(self, variables: list[keras.Variable], *, fused: bool, members: int = 1) -> None:
        # a member's elements of each variable, which its flat vector holds member by member
        sizes = [int(np.prod(v.shape)) // members for v in variables]
        self._fused = fused
        self._count = len(sizes)
        self.size = members * sum(sizes)  # the variables' elements
        segments = np.arange(len(sizes) * members).reshape(len(sizes), members)
        self._ids = tf.constant(np.repeat(segments.ravel(), np.repeat(sizes, members)), tf.int32)
        self._sizes = tf.constant(np.repeat(sizes, members), tf.float32)
        # an ensemble's statistics keep the member axis ahead of the variables'
        self._lead = [members] if members > 1 else []

    def weights(self, tensors: list[tf.Tensor]) -> tf.Tensor:
        """(variables, 4), or (M, variables, 4): mean, S.D., L2 norm, max |value| of each
        tensor (each member's slice of it)."""
        if self._fused:  # over each tensor's axes, or each member's slice's
            lead = len(self._lead)
            return tf.stack(
                [_moments_over(t, list(range(lead, len(t.shape)))) for t in tensors], lead
            )
        by_segment = self._moments(flat(tensors))
        if not self._lead:
            return by_segment
        return tf.transpose(tf.reshape(by_segment, [self._count, *self._lead, 4]), [1, 0, 2])

    def _moments(self, flat: tf.Tensor) -> tf.Tensor:
        """(segments, 4, ...): mean, S.D., L2 norm, max |value| of each segment of
        `flat` (size, ...), every trailing column on its own."""
        sizes = tf.reshape(self._sizes, [-1] + [1] * (len(flat.shape) - 1))
        mean = tf.math.segment_sum(flat, self._ids) / sizes
        centered = flat - tf.gather(mean, self._ids)
        std = tf.sqrt(tf.math.segment_sum(tf.square(centered), self._ids) / sizes)
        norm = tf.sqrt(tf.math.segment_sum(tf.square(flat), self._ids))
        max_abs = tf.math.segment_max(tf.abs(flat), self._ids)
        return tf.stack([mean, std, norm, max_abs], axis=1)

    def deferred_columns(self, steps: int) -> tuple[int, ...]:
        """The shape of `columns`, where an epoch of `steps` records them for `of_columns`
        (a plain graph, its vectors within `DEFERRED_FLOATS`); else ()."""
        if self._fused or steps * self.size * 3 > DEFERRED_FLOATS:
            return ()
        return (self.size, 3)

    def columns(self, stepped: Stepped) -> tf.Tensor:
        """(size, 3): the weights before the step, the gradients and the update, side by side."""
        return tf.stack([stepped.before, stepped.gradients, stepped.after - stepped.before], 1)

    def of_columns(self, columns: tf.Tensor) -> tf.Tensor:
        """(steps, variables, 9), or (steps, M, variables, 9): `step`'s statistics of each
        step's `columns` (steps, size, 3), reduced by segment in one pass: the same sums,
        column by column."""
        steps = int(columns.shape[0])
        side_by_side = tf.reshape(tf.transpose(columns, [1, 0, 2]), [self.size, steps * 3])
        moments = tf.reshape(self._moments(side_by_side), [self._count, *self._lead, 4, steps, 3])
        # to (steps, [M,] variables, 4, 3)
        moments = tf.transpose(moments, [3, 1, 0, 2, 4] if self._lead else [2, 0, 1, 3])
        weights, grads, update_norm = tf.unstack(moments, axis=-1)
        return step_figures(weights, grads, update_norm[..., 2])

    def step(
        self, stepped: Stepped, before: list[tf.Tensor], gradients: list[tf.Tensor]
    ) -> tf.Tensor:
        """(variables, 9), or (M, variables, 9): weight and gradient statistics, then the
        update ratio, of the variables' step (`stepped`, end to end; `before` and
        `gradients` per variable)."""
        if not self._fused:
            return self.of_columns(self.columns(stepped)[None])[0]
        after = stepped.values[: self._count]  # the captured variables'
        updates = self.weights([a - b for a, b in zip(after, before, strict=True)])
        return step_figures(self.weights(before), self.weights(gradients), updates[..., 2])


def step_figures(weights: tf.Tensor, grads: tf.Tensor, update_norm: tf.Tensor) -> tf.Tensor:
    """(..., variables, 9): the weights' and the gradients' four statistics (..., variables,
    4), then the update ratio |after - before| / |before| of the update's norm (...,
    variables). The ratio is undefined (NaN, stored as null) while |before| is zero, as
    for biases before their first update."""
    w_norm = weights[..., 2]
    safe = tf.where(w_norm > 0, w_norm, 1.0)
    ratio = tf.where(w_norm > 0, update_norm / safe, math.nan)
    return tf.concat([weights, grads, ratio[..., None]], axis=-1)


def _fetched(out: dict[str, Any], name: str) -> np.ndarray | None:
    """An epoch's output as NumPy, None where the epoch did not compute it."""
    return np.asarray(out[name]) if name in out else None


def channel_norms(kernels: list[tf.Tensor]) -> tf.Tensor:
    """Each kernel's L2 norm per output channel (over every axis but the last: a
    convolution's kernel is (k..., in, out)), the kernels' channels end to end."""
    return tf.concat(
        [tf.sqrt(tf.reduce_sum(tf.square(k), axis=list(range(len(k.shape) - 1)))) for k in kernels],
        0,
    )


def _moments_over(w: tf.Tensor, axes: list[int]) -> tf.Tensor:
    """(..., 4): mean, S.D., L2 norm and max |value| of `w` over `axes`."""
    return tf.stack(
        [
            tf.reduce_mean(w, axis=axes),
            tf.math.reduce_std(w, axis=axes),
            tf.sqrt(tf.reduce_sum(tf.square(w), axis=axes)),
            tf.reduce_max(tf.abs(w), axis=axes),
        ],
        axis=-1,
    )


def activation_stats(
    z: tf.Tensor, a: tf.Tensor, kind: Activation, mask: tf.Tensor | None = None
) -> tf.Tensor:
    """Mean, S.D., saturated, dead and negative fractions of one layer on a batch.

    z and a are (..., samples, units), the statistics (..., 5): one row for each
    index of any leading axes (an ensemble's members). Saturated (bounded
    activations only): the fraction of unit-sample pairs whose slope is under
    `SATURATION_SLOPE` of the steepest. Dead (relu only): the fraction of units
    whose pre-activation is <= 0 on every sample, so that they pass no
    signal and no gradient. Negative (the rest of the ReLU family: leaky_relu,
    elu, selu, gelu, swish): the same fraction, for units that still pass a
    reduced signal and gradient below zero. Each is NaN (null) where it does not
    apply. `mask` (the batch's samples, 1 for real ones and 0 for padding) keeps
    padding out of every statistic; a layer list's rows are each sample's positions
    in turn (core.engine.blocks.Pass.probe), each taking its sample's mask.
    """
    samples_and_units = [-2, -1]
    at_or_below = z <= 0
    if mask is None:

        def average(t: tf.Tensor) -> tf.Tensor:
            return tf.reduce_mean(t, axis=samples_and_units)

    else:
        rows, samples = int(z.shape[-2]), int(mask.shape[0])
        real = tf.repeat(mask, rows // samples) if rows != samples else mask
        weight = real[:, None]  # (rows, 1): each row's weight, across the units
        count = tf.reduce_sum(real) * float(z.shape[-1])
        # a padding row never keeps a unit from counting as at or below zero
        at_or_below = tf.logical_or(at_or_below, weight <= 0)

        def average(t: tf.Tensor) -> tf.Tensor:
            return tf.reduce_sum(t * weight, axis=samples_and_units) / count

    mean = average(a)
    std = tf.sqrt(average(tf.square(a - mean[..., None, None])))
    nan = tf.constant(np.full(mean.shape, np.nan, np.float32))
    saturated = dead = negative = nan
    if kind in BOUNDED_ACTIVATIONS:
        saturated = average(tf.cast(_slope_is_under(z, a, kind, SATURATION_SLOPE), tf.float32))
    if kind in RELU_FAMILY:
        always = tf.reduce_all(at_or_below, axis=-2)
        below = tf.reduce_mean(tf.cast(always, tf.float32), axis=-1)
        dead, negative = (below, nan) if kind in DYING_ACTIVATIONS else (nan, below)
    return tf.stack([mean, std, saturated, dead, negative], axis=-1)


def _slope_is_under(z: tf.Tensor, a: tf.Tensor, kind: Activation, fraction: float) -> tf.Tensor:
    """Where the activation's slope is under `fraction` of its steepest (bounded kinds)."""
    if kind is Activation.SIGMOID:
        # slope a (1 - a), steepest 1/4: dividing by 1/4 is exact, so this is
        # a (1 - a) / 0.25 < fraction bit for bit, in one op fewer
        return a * (1 - a) < fraction * 0.25
    if kind is Activation.TANH:
        return 1 - tf.square(a) < fraction
    return 1 / tf.square(1 + tf.abs(z)) < fraction  # softsign
