"""Compiled trainers kept per process, so repeated shapes pay no compile.

Two kinds of graph: a plain TensorFlow graph is ready in about a quarter of a
second, while XLA takes ~1.5 s more to compile but then runs a small net's
step several times faster. Which one a run gets is the process's XLA mode:

- `auto` (`gradwatch run`, one run in a fresh process): the plain graph,
  unless the run is long enough to repay the compile (`XLA_MIN_STEPS`);
- `always` (a worker, which lives across many jobs): XLA for every run, so a
  shape's first job pays the compile and every job after it trains fast;
  and since every job of a worker takes the same kind of graph, the same
  spec gives the same numbers bit for bit, job after job;
- `never`.

`GRADWATCH_XLA` in the environment overrides the process's choice. The two
kinds of graph agree to float32 rounding (relative 1e-6 over the tutorial's
100 epochs), not bit for bit: `result.timing.xla` says which one ran.

Trainers are checked out for the length of a run, so two runs in one
process never share variables.

Example:
    >>> with checkout(key, shapes, steps=3200) as (trainer, reused):
    ...     trainer.reset(initializer, seed=1, learning_rate=1e-3)
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from core.engine.ensemble import EnsembleTrainer
from core.engine.network import Architecture
from core.engine.trainer import CompiledTrainer, TrainerKey
from core.experiment.spec import TrainingSpec

# Steps over which compiling XLA first beats the plain graph: on 2 cores the
# five-hidden-layer 2-5-5-5-5-5-1 net saves ~0.1 ms a step against ~1.5 s more to
# compile; a cold run of 16,000 steps is 0.2 s faster plain, of 22,400 0.4 s
# faster on XLA.
XLA_MIN_STEPS = 18_000
CACHE_SLOTS = 16
BOUNDARY_RESOLUTION = 80  # the decision-surface grid is this many points a side

XlaMode = Literal["auto", "always", "never"]
XLA_MODES: tuple[XlaMode, ...] = ("auto", "always", "never")


@dataclass(frozen=True)
class Shapes:
    """The input shapes a compiled graph is specialised to."""

    samples: int
    features: int
    batch_size: int
    probe: int
    validation: int


@dataclass
class _Slot:
    plain: list[Trainer] = field(default_factory=list)
    xla: list[Trainer] = field(default_factory=list)


Trainer = CompiledTrainer | EnsembleTrainer
_SlotKey = tuple[TrainerKey, Shapes, int]  # the graph's key, shapes and members
_slots: OrderedDict[_SlotKey, _Slot] = OrderedDict()
_lock = threading.Lock()
_mode: XlaMode = "auto"


def set_xla_mode(mode: XlaMode) -> None:
    """This process's XLA mode (see the module docstring); GRADWATCH_XLA overrides it."""
    global _mode
    if mode not in XLA_MODES:
        raise ValueError(f"XLA mode must be one of {', '.join(XLA_MODES)}, not {mode!r}")
    _mode = mode


def xla_mode() -> XlaMode:
    """GRADWATCH_XLA when it names a mode, else the process's."""
    configured = os.environ.get("GRADWATCH_XLA", "")
    for mode in XLA_MODES:
        if configured == mode:
            return mode
    return _mode


def trainer_key(
    architecture: Architecture,
    training: TrainingSpec,
    *,
    step_capture: bool,
    raw: bool,
    activations: bool = True,
) -> TrainerKey:
    optimizer = training.optimizer
    return TrainerKey(
        architecture=architecture,
        optimizer=optimizer.kind,
        momentum=optimizer.momentum,
        nesterov=optimizer.nesterov,
        clipnorm=training.clipnorm,
        clipvalue=training.clipvalue,
        step_capture=step_capture,
        raw=raw,
        activations=activations,
    )


@contextmanager
def checkout(
    key: TrainerKey, shapes: Shapes, *, steps: int
) -> Iterator[tuple[CompiledTrainer, bool]]:
    """A trainer for `key` and `shapes`, held by the caller until the block ends.

    Yields the trainer and whether it was reused (its graphs already built).
    """
    trainer, reused = _take((key, shapes, 1), steps=steps)
    assert isinstance(trainer, CompiledTrainer)
    try:
        yield trainer, reused
    finally:
        _give_back((key, shapes, 1), trainer)


@contextmanager
def checkout_ensemble(
    key: TrainerKey, shapes: Shapes, *, steps: int, members: int
) -> Iterator[tuple[EnsembleTrainer, bool]]:
    """As `checkout`, for `members` runs of `key` trained side by side (core.engine.ensemble)."""
    trainer, reused = _take((key, shapes, members), steps=steps)
    assert isinstance(trainer, EnsembleTrainer)
    try:
        yield trainer, reused
    finally:
        _give_back((key, shapes, members), trainer)


def _new_trainer(slot_key: _SlotKey, *, jit: bool) -> Trainer:
    key, _, members = slot_key
    if members == 1:
        return CompiledTrainer(key, jit=jit)
    return EnsembleTrainer(key, members, jit=jit)


def _take(slot_key: _SlotKey, *, steps: int) -> tuple[Trainer, bool]:
    mode = xla_mode()
    jit = mode == "always" or (mode == "auto" and steps >= XLA_MIN_STEPS)
    with _lock:
        slot = _slots.setdefault(slot_key, _Slot())
        _slots.move_to_end(slot_key)
        kept = slot.xla if jit else slot.plain
        if kept:
            return kept.pop(), True
    return _new_trainer(slot_key, jit=jit), False


def _give_back(slot_key: _SlotKey, trainer: Trainer) -> None:
    with _lock:
        slot = _slots.setdefault(slot_key, _Slot())
        (slot.xla if trainer.jit else slot.plain).append(trainer)
        while len(_slots) > CACHE_SLOTS:
            _slots.popitem(last=False)
