"""Long epochs in calls of bounded cost, so a run can stop within about a second.

A compiled epoch is one call into TensorFlow: Python, and with it a cancel, a
hook or Celery's soft time limit, gets a word in only when it returns. Most
epochs take milliseconds, but a wide net at batch size 1 can spend minutes in
one. So an epoch whose estimated cost is over
`CALL_FLOPS` runs as several calls of a fixed number of steps each (the last
one masked), with its start (the evaluation on the whole epoch's data) and its
end (the weights' statistics, the probe) in calls of their own, and evaluation
and prediction go by rows the same way. Between calls the engine runs its
`Between` callback, which may raise to stop the run.

How an epoch is split depends on the spec alone (its architecture, batch, probe
and what it captures), never on measured time, so the same spec always runs
the same graphs and gives the same numbers bit for bit. An epoch that fits in
one call, as the tutorial's does, runs exactly as before: one fused graph.

TensorFlow-free: `EpochCalls`, the trainers' base (core.engine.trainer,
core.engine.ensemble), calls their graph functions and leaves the graph code
to them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

# Estimated float operations per call: ~0.1 s on a small CPU's 2 cores (at the
# 10-20 GFLOP/s small matrix products reach), a few times that under load.
CALL_FLOPS = 1e9
# What one optimizer step costs beyond its arithmetic (running its few hundred
# ops), in the same units: ~50 us.
STEP_OVERHEAD_FLOPS = 5e5
# The statistics of the weights, gradients and updates: ~10 operations per
# parameter for each of the three.
STATS_FLOPS_PER_PARAMETER = 30

Between = Callable[[], None]


def _dense_parameters(widths: Sequence[int]) -> int:
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


def step_flops(
    widths: Sequence[int], *, batch_size: int, activations_every_step: bool, members: int = 1
) -> float:
    """Estimated cost of one optimizer step (every member's) in float operations; with
    `activations_every_step`, the statistics of its batch's activations too."""
    parameters = _dense_parameters(widths)
    cost = 6 * parameters * batch_size + STATS_FLOPS_PER_PARAMETER * parameters
    if activations_every_step:
        cost += 10 * sum(widths[1:-1]) * batch_size
    return members * cost + STEP_OVERHEAD_FLOPS


def steps_per_call(
    widths: Sequence[int], *, batch_size: int, activations_every_step: bool, members: int = 1
) -> int:
    """How many steps one call may run: at least one."""
    cost = step_flops(
        widths,
        batch_size=batch_size,
        activations_every_step=activations_every_step,
        members=members,
    )
    return max(1, int(CALL_FLOPS // cost))


def rows_per_call(widths: Sequence[int], *, members: int = 1) -> int:
    """How many rows one call of an evaluation or prediction may take: at least one."""
    return max(1, int(CALL_FLOPS // (2 * members * _dense_parameters(widths) + 1)))


# A recurrent layer's time step, forward and back: a few small ops whatever its
# size, ~0.2 ms on a plain graph (core/experiment/limits.py Limits.STEP_TIMESTEPS).
TIMESTEP_OVERHEAD_FLOPS = 2e6


def layered_step_flops(shapes: Any, *, batch_size: int) -> float:
    """Estimated cost of one optimizer step of a layer list (core.experiment.spec
    `LayeredShapes`: its float operations per sample, parameters and time steps); the
    statistics of its batch's activations, when a step records them, add little."""
    cost = 3 * shapes.flops * batch_size + STATS_FLOPS_PER_PARAMETER * shapes.parameters
    cost += shapes.timesteps * TIMESTEP_OVERHEAD_FLOPS
    return cost + STEP_OVERHEAD_FLOPS


def architecture_steps_per_call(architecture: Any, **step: Any) -> int:
    """`steps_per_call` for an MLP's architecture or a layer list's (its `shapes`)."""
    step_cost, _ = _call_sizes(architecture, **step)
    return max(1, int(CALL_FLOPS // step_cost))


def _call_sizes(architecture: Any, **step: Any) -> tuple[float, float]:
    """(one step's cost, one row's evaluation cost) of an MLP's or a layer list's step."""
    shapes = getattr(architecture, "shapes", None)
    if shapes is None:
        widths = architecture.widths
        return step_flops(widths, **step), 2 * _dense_parameters(widths) + 1
    row = shapes.flops + shapes.timesteps * TIMESTEP_OVERHEAD_FLOPS / 64
    return layered_step_flops(shapes, batch_size=step["batch_size"]), row


def _rows(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index: list[Any] = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def mean_by_rows(
    sums: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]],
    x: np.ndarray,
    y: np.ndarray,
    *,
    rows: int,
    axis: int,
    between: Between | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy over every row of (x, y) from `sums` (their sums over the rows
    it is given), `rows` rows a call; float32, as a reduction in the graph would be."""
    n = x.shape[axis]
    loss_sum = hits_sum = None
    for start in range(0, n, rows):
        if start and between is not None:
            between()
        stop = min(n, start + rows)
        loss, hits = sums(_rows(x, axis, start, stop), _rows(y, axis, start, stop))
        loss_sum = np.asarray(loss) if loss_sum is None else loss_sum + np.asarray(loss)
        hits_sum = np.asarray(hits) if hits_sum is None else hits_sum + np.asarray(hits)
    count = np.float32(n)
    assert loss_sum is not None and hits_sum is not None
    return loss_sum / count, hits_sum / count


def concat_by_rows(
    fn: Callable[[np.ndarray], Any],
    x: np.ndarray,
    *,
    rows: int,
    axis: int,
    between: Between | None,
) -> np.ndarray:
    """`fn` of every row of x, `rows` rows a call, joined along `axis`."""
    n = x.shape[axis]
    parts = []
    for start in range(0, n, rows):
        if start and between is not None:
            between()
        parts.append(np.asarray(fn(_rows(x, axis, start, min(n, start + rows)))))
    return np.concatenate(parts, axis=axis)


# What a trainer's `train_epoch` hands back: a run's epoch, or each ensemble member's.
Epoch = TypeVar("Epoch")


class EpochCalls(Generic[Epoch]):
    """How a trainer (a run alone, or an ensemble) runs an epoch: in one call of its
    fused epoch graph, or in several (`train_in_chunks`), and evaluates and predicts
    by rows. The base of `core.engine.trainer.EpochGraph`, the graph code that
    `core.engine.trainer.CompiledTrainer` and `core.engine.ensemble.EnsembleTrainer` share.
    """

    key: Any  # a core.engine.trainer.TrainerKey
    members: int
    rows_axis: int  # 0 for a run alone; 1 where a leading axis holds an ensemble's members
    # Graph functions (core.engine.graph_calls.graph_function) of the methods named alike.
    _epoch_fn: Callable[..., Any]
    _chunk_fn: Callable[..., Any]
    _edge_fn: Callable[..., Any]
    _sums_fn: Callable[..., Any]
    _predict_fn: Callable[..., Any]

    def train_epoch(
        self,
        x: np.ndarray,
        y: np.ndarray,
        probe: np.ndarray,
        *,
        batch_size: int,
        between: Between | None = None,
    ) -> Epoch:
        """Run one epoch over (x, y) in the given order, `batch_size` samples a step (an
        ensemble's x (M, n, ...) and y (M, n): each member's own rows, in its order).

        An epoch too long for one call runs in several, with `between` called between
        them: it may raise to stop the run there.
        """
        out = self._epoch_outputs(x, y, probe, batch_size=batch_size, between=between)
        return self._epoch_of(out)

    def _epoch_of(self, out: dict[str, Any]) -> Epoch:
        """What `train_epoch` hands back, from the epoch's outputs."""
        raise NotImplementedError

    def _epoch_outputs(
        self,
        x: np.ndarray,
        y: np.ndarray,
        probe: np.ndarray,
        *,
        batch_size: int,
        between: Between | None,
    ) -> dict[str, Any]:
        """One epoch's outputs, from one call if its cost allows, else from several."""
        axis = self.rows_axis
        steps = -(-x.shape[axis] // batch_size)
        per_call = architecture_steps_per_call(
            self.key.architecture,
            batch_size=batch_size,
            activations_every_step=self.key.step_capture and self.key.activations,
            members=self.members,
        )
        if per_call >= steps:
            return dict(self._epoch_fn(x, y, probe, batch_size))
        return train_in_chunks(
            self, x, y, probe, batch_size=batch_size, steps=per_call, between=between
        )

    @property
    def _rows_per_call(self) -> int:
        shapes = getattr(self.key.architecture, "shapes", None)
        if shapes is None:
            return rows_per_call(self.key.architecture.widths, members=self.members)
        _, row = _call_sizes(
            self.key.architecture, batch_size=1, activations_every_step=False, members=1
        )
        return max(1, int(CALL_FLOPS // row))

    def chunk_call(
        self,
        x: np.ndarray,
        y: np.ndarray,
        mask: np.ndarray,
        *,
        batch_size: int,
        count: int,
    ) -> dict[str, Any]:
        """Run `count` steps over the rows of x, y (as many steps as fit, the rest padding)."""
        return dict(self._chunk_fn(x, y, mask, batch_size, np.asarray(count, np.int32)))

    def edge_call(self, probe: np.ndarray) -> dict[str, Any]:
        """The weights' statistics now and, when probing, the activations on `probe`."""
        return dict(self._edge_fn(probe))

    def start_metrics(
        self, x: np.ndarray, y: np.ndarray, between: Between | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Loss and accuracy on the whole of (x, y) (per member), in inference mode."""
        return mean_by_rows(
            self._sums_fn, x, y, rows=self._rows_per_call, axis=self.rows_axis, between=between
        )

    def _predict_by_rows(self, x: np.ndarray, between: Between | None) -> np.ndarray:
        return concat_by_rows(
            self._predict_fn, x, rows=self._rows_per_call, axis=self.rows_axis, between=between
        )

    # ------------------------------------------------------------------ graph code

    def _run_steps(
        self, x: Any, y: Any, mask: Any, batch_size: int, *, count: Any
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _weight_stats(self) -> Any:
        raise NotImplementedError

    def _probe(self, probe: Any) -> Any:
        raise NotImplementedError

    def _train_chunk(
        self, x: Any, y: Any, mask: Any, batch_size: int, count: Any
    ) -> dict[str, Any]:
        """`count` steps over the rows of x, y: part of an epoch."""
        return self._run_steps(x, y, mask, batch_size, count=count)

    def _edge(self, probe: Any) -> dict[str, Any]:
        """The weights' statistics and the activations on `probe`, as they are now."""
        out = {"weight_stats": self._weight_stats()}
        if self.key.activations:
            out["activation_stats"] = self._probe(probe)
        return out


# Per-step outputs of a chunk, joined along the steps; lists hold one array per variable.
_STEPPED = (
    "step_stats",
    "step_loss",
    "step_accuracy",
    "step_size",
    "step_activation_stats",
    "step_through_time",
    "step_channels",
)
_STEPPED_LISTS = ("step_weights", "step_gradients")


def train_in_chunks(
    trainer: EpochCalls,
    x: np.ndarray,
    y: np.ndarray,
    probe: np.ndarray,
    *,
    batch_size: int,
    steps: int,
    between: Between | None,
) -> dict[str, Any]:
    """One epoch over (x, y) as calls of `steps` steps each; the outputs a fused epoch
    graph gives, as NumPy arrays (the end's activations when probing every epoch)."""
    axis = trainer.rows_axis
    n = x.shape[axis]
    start_loss, start_accuracy = trainer.start_metrics(x, y, between)
    rows = steps * batch_size
    parts: list[dict[str, Any]] = []
    for first_row in range(0, n, rows):
        if between is not None:
            between()
        real = min(rows, n - first_row)
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, rows - real)
        x_part = np.pad(_rows(x, axis, first_row, first_row + real), pad)
        y_part = np.pad(_rows(y, axis, first_row, first_row + real), pad[: y.ndim])
        mask = np.zeros(rows, np.float32)
        mask[:real] = 1.0
        count = -(-real // batch_size)
        out = trainer.chunk_call(x_part, y_part, mask, batch_size=batch_size, count=count)
        parts.append(_fetched(out, count))
    if between is not None:
        between()
    end = trainer.edge_call(probe)
    epoch: dict[str, Any] = {
        "start_loss": start_loss,
        "start_accuracy": start_accuracy,
        "end_weight_stats": np.asarray(end["weight_stats"]),
        "first_gradients": parts[0]["first_gradients"],
        "last_gradients": parts[-1]["last_gradients"],
    }
    for name in _STEPPED:
        if name in parts[0]:
            epoch[name] = np.concatenate([part[name] for part in parts])
    for name in _STEPPED_LISTS:
        epoch[name] = [
            np.concatenate(pieces) for pieces in zip(*(part[name] for part in parts), strict=True)
        ]
    if "activation_stats" in end and not trainer.key.step_capture:
        epoch["end_activation_stats"] = np.asarray(end["activation_stats"])
    return epoch


def _fetched(out: dict[str, Any], count: int) -> dict[str, Any]:
    """A chunk's outputs as NumPy, its per-step arrays cut to the `count` steps it ran."""
    fetched: dict[str, Any] = {
        "first_gradients": [np.asarray(g) for g in out["first_gradients"]],
        "last_gradients": [np.asarray(g) for g in out["last_gradients"]],
    }
    for name in _STEPPED:
        if name in out:
            fetched[name] = np.asarray(out[name])[:count]
    for name in _STEPPED_LISTS:
        fetched[name] = [np.asarray(t)[:count] for t in out.get(name, [])]
    return fetched
