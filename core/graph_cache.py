"""Compiled trainers kept per process, so repeated shapes pay no compile.

Two tiers, as in a JIT: a plain TensorFlow graph traces in well under a
second, while XLA takes seconds to compile but then runs a small net's epoch
several times faster. A run of a shape never seen takes the plain graph; a
long-lived process (the worker) meanwhile compiles the XLA trainer in a
background thread, and every later run of that shape takes it. Runs long
enough to repay the compile at once (`XLA_MIN_STEPS`) take XLA straight away.

Trainers are checked out for the length of a run, so two runs in one
process never share variables.

Example:
    >>> with checkout(key, shapes, steps=3200) as (trainer, reused):
    ...     trainer.reset(initializer, seed=1, learning_rate=1e-3)
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from core.ensemble import EnsembleTrainer
from core.network import Architecture
from core.spec import TrainingSpec
from core.trainer import CompiledTrainer, TrainerKey

log = logging.getLogger(__name__)

# Steps over which compiling XLA first beats the plain graph: the tutorial's
# 2-5-5-5-5-5-1 net saves ~0.4 ms a step against ~5 s of compile on 2 cores.
XLA_MIN_STEPS = 15_000
CACHE_SLOTS = 16
BOUNDARY_RESOLUTION = 80  # the decision-surface grid is this many points a side


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
    compiling: bool = False


Trainer = CompiledTrainer | EnsembleTrainer
_SlotKey = tuple[TrainerKey, Shapes, int]  # the graph's key, shapes and members
_slots: OrderedDict[_SlotKey, _Slot] = OrderedDict()
_lock = threading.Lock()
_background = False


def enable_background_compile(enabled: bool = True) -> None:
    """Let this process compile XLA trainers in the background (long-lived processes)."""
    global _background
    _background = enabled


def _xla_mode() -> str:
    """GRADWATCH_XLA: `auto` (tiers, the default), `always` or `never`."""
    mode = os.environ.get("GRADWATCH_XLA", "auto")
    return mode if mode in {"auto", "always", "never"} else "auto"


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
    """As `checkout`, for `members` runs of `key` trained side by side (core.ensemble)."""
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
    mode = _xla_mode()
    with _lock:
        slot = _slots.setdefault(slot_key, _Slot())
        _slots.move_to_end(slot_key)
        if slot.xla and mode != "never":
            return slot.xla.pop(), True
        if slot.plain and mode != "always":
            return slot.plain.pop(), True
        jit_now = mode == "always" or (mode == "auto" and steps >= XLA_MIN_STEPS)
        compile_later = mode == "auto" and not jit_now and _background and not slot.compiling
        if compile_later:
            slot.compiling = True
    if compile_later:
        threading.Thread(
            target=_compile_in_background, args=(slot_key,), name="xla-compile", daemon=True
        ).start()
    return _new_trainer(slot_key, jit=jit_now), False


def _give_back(slot_key: _SlotKey, trainer: Trainer) -> None:
    with _lock:
        slot = _slots.setdefault(slot_key, _Slot())
        (slot.xla if trainer.jit else slot.plain).append(trainer)
        while len(_slots) > CACHE_SLOTS:
            _slots.popitem(last=False)


def _compile_in_background(slot_key: _SlotKey) -> None:
    try:
        trainer = _new_trainer(slot_key, jit=True)
        warm_up(trainer, slot_key[1], members=slot_key[2])
    except Exception:  # a failed compile only costs speed: the plain tier still works
        log.exception("background XLA compile failed for %s", slot_key)
        return
    finally:
        with _lock:
            if slot_key in _slots:
                _slots[slot_key].compiling = False
    _give_back(slot_key, trainer)


def warm_up(trainer: Trainer, shapes: Shapes, *, members: int = 1) -> None:
    """Build every graph a run of `shapes` calls, on zeros (the next run resets the weights).

    An ensemble's arrays have a leading member axis.
    """
    lead = () if members == 1 else (members,)
    x = np.zeros((*lead, shapes.samples, shapes.features), np.float32)
    y = np.zeros((*lead, shapes.samples), np.int32)
    trainer.train_epoch(x, y, x[..., : shapes.probe, :], batch_size=shapes.batch_size)
    trainer.evaluate(x, y)
    if shapes.validation:
        trainer.evaluate(x[..., : shapes.validation, :], y[..., : shapes.validation])
    if shapes.features == 2:
        trainer.predict(np.zeros((BOUNDARY_RESOLUTION**2, 2), np.float32))


def wait_for_background_compiles(timeout: float = 120.0) -> bool:
    """Block until no background compile runs (for benchmarks and tests)."""
    for thread in threading.enumerate():
        if thread.name == "xla-compile":
            thread.join(timeout)
    return not any(t.name == "xla-compile" for t in threading.enumerate())
