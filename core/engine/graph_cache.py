"""Compiled trainers kept per process, and which kind of graph a run gets.

Two kinds of graph: a plain TensorFlow graph is traced in a fraction of a
second, while XLA takes a second or two more to compile but then runs a
small MLP's step several times faster (and a long SimpleRNN or GRU loop's
some 2x; not a convolution's, nor an LSTM's: measured, XLA ran those slower
here). A run's `training.graph` pins the kind (`plain`, `xla`); for `auto`
the process's XLA mode chooses, by the rule for the network's kind
(`TIER_RULES`: an MLP, a convolutional network, an LSTM, a SimpleRNN or GRU):

- `tiered` (a worker, which lives across many jobs): XLA when this process
  holds the network compiled; else the plain graph, unless the run is long
  enough to repay compiling first (the rule's `xla_min_steps`). Where the
  rule says XLA pays, once a network recurs (its `compile_after`-th run in
  the process: `set_compile_after`), a background thread compiles XLA for
  its next runs, from the moment that run gives its trainer back, so that
  the compile does not slow the run that asked for it (and while the gate
  the process sets says no job waits for a core: see `set_compile_gate`).
  So a network's first jobs answer at the plain graph's speed, its later
  ones at XLA's, no job waits for a compile, and a network tried once (most
  of what users send, and a study's children) costs no compile, which on a
  2-core host takes a core;
- `auto` (`gradwatch run`, one run in a fresh process): the plain graph,
  unless the run is long enough to repay the compile;
- `always`: XLA for every run (a worker before tiers: a network's first job
  pays the compile);
- `never`: the plain graph for every run.

`GRADWATCH_XLA` in the environment overrides the process's choice. The two
kinds of graph agree to float32 rounding, not bit for bit: `result.timing.graph`
says which one ran, and a client that needs the same numbers bit for bit
across workers and runs pins the kind.

Trainers are checked out for the length of a run, so two runs in one
process never share variables. The cache holds `CACHE_SLOTS` networks, the
least recently used dropped first; `warm_graphs` names the ones it holds
compiled (for a worker's heartbeat to announce).

Example:
    >>> with checkout(key, shapes, steps=3200, graph=GraphKind.AUTO) as (trainer, reused):
    ...     trainer.reset(initializer, seed=1, learning_rate=1e-3)
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core.engine import chunks
from core.engine.ensemble import EnsembleTrainer
from core.engine.graph_calls import tracing_all
from core.engine.layered import LayeredArchitecture
from core.engine.network import Architecture
from core.engine.trainer import CompiledTrainer, TrainerKey
from core.experiment.layer_shapes import layer_members
from core.experiment.spec import GraphKind, TrainingSpec

logger = logging.getLogger(__name__)

NetworkKind = Literal["mlp", "conv", "lstm", "simple_rnn_or_gru"]


@dataclass(frozen=True)
class TierRule:
    """How `auto` chooses the kind of graph for one kind of network.

    `background_xla`: XLA's warm epoch beats the plain graph's by enough (1.3x or
    more) to compile it beside a network's first runs for its later ones.
    `xla_min_steps`: a run of this many optimizer steps or more compiles XLA first
    (it repays the compile within the run); None: never.
    `min_timesteps`: XLA at all only for a network that runs this many recurrent
    time steps a pass or more.
    `one_call_epochs`: compile in the background only where an epoch fits one graph
    call (core.engine.chunks): an MLP's longer epoch is arithmetic, which XLA
    hardly speeds up; a recurrent loop's is time steps, which it can.
    """

    background_xla: bool
    xla_min_steps: int | None
    min_timesteps: int = 0
    one_call_epochs: bool = True


# The rule, per kind of network, as measured on this project's 2-core machine.
# XLA pays where its warm epoch is 1.3x the plain graph's speed or more and its
# compile is repaid within a preset's 30 epochs; else nothing is compiled for it.
# - mlp: the tutorial's net saves ~0.1 ms a step on XLA against ~1.5 s more to
#   compile; a cold run of 16,000 steps is 0.2 s faster plain, of 22,400 0.4 s
#   faster on XLA.
# - the others: `benchmarks/networks.py --tiers` (README, Performance, "Graph
#   tiers": the presets' networks and the conv-depth and recurrent-cells studies'
#   configurations, plain and XLA side by side; three runs on a shared machine,
#   load 3-7, and one quiet, load 0.4-1.1; medians). conv: XLA lost for every
#   convolutional network (0.12x-0.63x, no fewer CPU seconds, 10-30 s more to
#   compile). lstm: loaded, 0.3x-1.8x from one run to the next, 0.67x-0.75x in
#   the steadiest; quiet, 1.22x (LSTM(32), `lstm-adding`) and 1.50x (LSTM(16)),
#   repaid after 22-32 epochs; CPU seconds 0.96x-1.16x the plain graph's, and
#   more in most loaded runs: on a busy host it loses.
#   simple_rnn_or_gru at 100 steps: GRU(16) 1.4x-2.7x in every run, SimpleRNN(16)
#   1.7x-2.5x in three of four (0.5x in one), with fewer CPU seconds, the compile
#   (~3 CPU seconds) repaid in 9-26 epochs of 32 steps (300-850 steps), so a run
#   of 2,000 steps or more compiles first; at 10 and 50 steps an epoch is so
#   short that even 1.5x-1.7x repays the compile only after 40 epochs or more.
TIER_RULES: dict[NetworkKind, TierRule] = {
    "mlp": TierRule(background_xla=True, xla_min_steps=18_000),
    "conv": TierRule(background_xla=False, xla_min_steps=None),
    "lstm": TierRule(background_xla=False, xla_min_steps=None),
    "simple_rnn_or_gru": TierRule(
        background_xla=True, xla_min_steps=2_000, min_timesteps=100, one_call_epochs=False
    ),
}
CACHE_SLOTS = 16
# Networks waiting for the background compiler; past this the oldest request is dropped.
MAX_PENDING_COMPILES = 4
# A tiered process compiles XLA for a network from its this-many-th run on (see
# `set_compile_after`): the second, so that a network run once costs no compile.
COMPILE_AFTER_RUNS = 2
# While the gate is shut, the compiler asks it again this often.
GATE_SECONDS = 0.25
BOUNDARY_RESOLUTION = 80  # the decision-surface grid is this many points a side

XlaMode = Literal["tiered", "auto", "always", "never"]
XLA_MODES: tuple[XlaMode, ...] = ("tiered", "auto", "always", "never")


@dataclass(frozen=True)
class Shapes:
    """The input shapes a compiled graph is specialised to."""

    samples: int
    features: int
    batch_size: int
    probe: int
    validation: int


Trainer = CompiledTrainer | EnsembleTrainer
_SlotKey = tuple[TrainerKey, Shapes, int]  # the graph's key, shapes and members


@dataclass
class _Slot:
    signature: str  # core.experiment.grouping.graph_signature of the runs it serves
    plain: list[Trainer] = field(default_factory=list)
    xla: list[Trainer] = field(default_factory=list)
    compiling: bool = False  # queued for, or in, the background compiler
    runs: int = 0  # runs that let the process choose the kind (`auto`)
    compile_due: bool = False  # a run under way asked for XLA: compile as it ends
    compile_failed: bool = False


_slots: OrderedDict[_SlotKey, _Slot] = OrderedDict()
_lock = threading.Lock()
_mode: XlaMode = "auto"
_compile_after = COMPILE_AFTER_RUNS


def set_xla_mode(mode: XlaMode) -> None:
    """This process's XLA mode (see the module docstring); GRADWATCH_XLA overrides it."""
    global _mode
    if mode not in XLA_MODES:
        raise ValueError(f"XLA mode must be one of {', '.join(XLA_MODES)}, not {mode!r}")
    _mode = mode


def set_compile_after(runs: int) -> None:
    """A tiered process compiles XLA for a network in the background from its `runs`-th
    run on (each run whose graph is `auto` counts): 1 compiles for every network's first
    run, as soon as it is seen."""
    global _compile_after
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    _compile_after = runs


def xla_mode() -> XlaMode:
    """GRADWATCH_XLA when it names a mode, else the process's."""
    configured = os.environ.get("GRADWATCH_XLA", "")
    for mode in XLA_MODES:
        if configured == mode:
            return mode
    return _mode


def trainer_key(
    architecture: Architecture | LayeredArchitecture,
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


def network_kind(architecture: Architecture | LayeredArchitecture) -> NetworkKind:
    """The kind whose rule (`TIER_RULES`) a network's graph follows: `lstm` with an
    LSTM anywhere, else `conv` with a convolution, else `simple_rnn_or_gru` with a
    recurrent layer, else `mlp` (an MLP, or a layer list of dense and shape-keeping
    layers). Where a network has two kinds' layers, the kind XLA pays less for."""
    shapes = getattr(architecture, "shapes", None)
    if shapes is None:
        return "mlp"
    classes = {layer.class_name for layer in layer_members(shapes.hidden)}
    if "LSTM" in classes:
        return "lstm"
    if any(name.startswith("Conv") for name in classes):
        return "conv"
    if shapes.timesteps:
        return "simple_rnn_or_gru"
    return "mlp"


def _rule(architecture: Architecture | LayeredArchitecture) -> TierRule | None:
    """The network's rule, or None where it says XLA never pays for this network."""
    rule = TIER_RULES[network_kind(architecture)]
    shapes = getattr(architecture, "shapes", None)
    timesteps = shapes.timesteps if shapes is not None else 0
    return rule if timesteps >= rule.min_timesteps else None


def auto_graph(
    architecture: Architecture | LayeredArchitecture, *, steps: int, mode: XlaMode, held: bool
) -> tuple[bool, bool]:
    """What `auto` gives a run of `steps` optimizer steps in a process of `mode`, by the
    network's rule: (XLA, compile XLA in the background for its later runs). `held`:
    the process holds XLA's graph of the network already."""
    rule = _rule(architecture)
    long_run = rule is not None and rule.xla_min_steps is not None and steps >= rule.xla_min_steps
    if mode == "tiered":
        jit = held or long_run
        return jit, not jit and rule is not None and rule.background_xla
    return mode == "always" or (mode == "auto" and long_run), False


@dataclass(frozen=True)
class WarmGraph:
    """A network this process holds compiled: its graph signature, how many runs it
    trains side by side, and whether XLA's graph is among them (else the plain one)."""

    signature: str
    members: int
    xla: bool


_listeners: list[Callable[[], None]] = []


def on_warm_graphs_change(listener: Callable[[], None]) -> None:
    """Call `listener` (on the compiler's thread) each time a background compile ends."""
    _listeners.append(listener)


def warm_graphs() -> list[WarmGraph]:
    """The networks whose graphs this process holds, most recently used first."""
    with _lock:
        return [
            WarmGraph(slot.signature, members, xla=bool(slot.xla))
            for (_, _, members), slot in reversed(_slots.items())
            if slot.plain or slot.xla
        ]


@contextmanager
def checkout(
    key: TrainerKey, shapes: Shapes, *, steps: int, graph: GraphKind, signature: str = ""
) -> Iterator[tuple[CompiledTrainer, bool]]:
    """A trainer for `key` and `shapes`, held by the caller until the block ends.

    Yields the trainer and whether it was reused (its graphs already built).
    `signature` names its graph for `warm_graphs`.
    """
    trainer, reused = _take((key, shapes, 1), steps=steps, graph=graph, signature=signature)
    assert isinstance(trainer, CompiledTrainer)
    try:
        yield trainer, reused
    finally:
        _give_back((key, shapes, 1), trainer)


@contextmanager
def checkout_ensemble(
    key: TrainerKey,
    shapes: Shapes,
    *,
    steps: int,
    members: int,
    graph: GraphKind,
    signature: str = "",
) -> Iterator[tuple[EnsembleTrainer, bool]]:
    """As `checkout`, for `members` runs of `key` trained side by side (core.engine.ensemble)."""
    slot_key = (key, shapes, members)
    trainer, reused = _take(slot_key, steps=steps, graph=graph, signature=signature)
    assert isinstance(trainer, EnsembleTrainer)
    try:
        yield trainer, reused
    finally:
        _give_back(slot_key, trainer)


def _new_trainer(slot_key: _SlotKey, *, jit: bool) -> Trainer:
    key, _, members = slot_key
    if members == 1:
        return CompiledTrainer(key, jit=jit)
    return EnsembleTrainer(key, members, jit=jit)


def _take(
    slot_key: _SlotKey, *, steps: int, graph: GraphKind, signature: str
) -> tuple[Trainer, bool]:
    mode = xla_mode()
    with _lock:
        slot = _slots.get(slot_key) or _Slot(signature)
        slot.signature = signature or slot.signature
        _slots[slot_key] = slot
        _slots.move_to_end(slot_key)
        if graph is GraphKind.AUTO:
            architecture = slot_key[0].architecture
            jit, compile_ = auto_graph(architecture, steps=steps, mode=mode, held=bool(slot.xla))
            if mode == "tiered":
                slot.runs += 1
            if compile_ and slot.runs >= _compile_after and _compile_pays(slot_key):
                slot.compile_due = True  # requested as this run ends: not beside it
        else:
            jit = graph is GraphKind.XLA
        kept = slot.xla if jit else slot.plain
        if kept:
            return kept.pop(), True
    return _new_trainer(slot_key, jit=jit), False


def _give_back(slot_key: _SlotKey, trainer: Trainer) -> None:
    with _lock:
        slot = _slots.get(slot_key)
        if slot is None:
            return  # dropped from the cache meanwhile
        (slot.xla if trainer.jit else slot.plain).append(trainer)
        if slot.compile_due:
            slot.compile_due = False
            if not slot.xla:  # else a compile that ended during the run already holds it
                _request_compile(slot_key, slot)
        _trim()


def _trim() -> None:
    """Drop the least recently used networks past CACHE_SLOTS (under `_lock`)."""
    while len(_slots) > CACHE_SLOTS:
        _slots.popitem(last=False)


def clear() -> None:
    """Forget every compiled trainer (and pending compile) of this process."""
    with _lock:
        _slots.clear()
        _pending.clear()


# ------------------------------------------------------------------ the background compiler


def _compile_pays(slot_key: _SlotKey) -> bool:
    """Whether XLA is worth compiling for a network its rule compiles for: where its
    epoch fits one call, if the rule says so (`one_call_epochs`). An MLP's epoch too
    long for one (core.engine.chunks) is arithmetic more than overhead, which XLA
    hardly speeds up, and warming its graph up would cost an epoch's work."""
    key, shapes, members = slot_key
    rule = _rule(key.architecture)
    if rule is not None and not rule.one_call_epochs:
        return True
    steps = -(-shapes.samples // shapes.batch_size)
    per_call = chunks.architecture_steps_per_call(
        key.architecture,
        batch_size=shapes.batch_size,
        activations_every_step=key.step_capture and key.activations,
        members=members,
    )
    return per_call >= steps


_pending: deque[_SlotKey] = deque()
_wake = threading.Condition(_lock)
_compiler: threading.Thread | None = None
_exiting = False
# How long a process that ends waits for a compile under way to finish.
EXIT_WAIT_SECONDS = 60.0


@atexit.register
def _stop_compiler() -> None:
    """As the process ends: start no other compile and let the one under way finish. A
    daemon thread still inside XLA when the interpreter tears it down aborts the process
    ("FATAL: exception not rethrown"), which would fail a clean exit: `gradwatch run`,
    a worker in a solo or threads pool, a test run at its end. (A prefork pool
    process ends with os._exit, which neither runs this nor tears threads down.)"""
    global _exiting
    with _wake:
        _exiting = True
        _wake.notify_all()
    if _compiler is not None:
        _compiler.join(EXIT_WAIT_SECONDS)


def always_open() -> bool:
    """The compile gate of a process that sets none: compile whenever no run is under way."""
    return True


_gate: Callable[[], bool] = always_open


def set_compile_gate(gate: Callable[[], bool]) -> None:
    """The background compiler starts a compile only when `gate()` is true (asked on its
    thread, between runs): a worker's says no job waits for a worker. A compile takes
    seconds of a core that cannot be taken back once it starts, so it is worth its
    cost only where no job wants that core; a gate that raises counts as shut."""
    global _gate
    _gate = gate


def _gate_open() -> bool:
    try:
        return bool(_gate())
    except Exception:
        logger.warning("the compile gate failed; no compile this round", exc_info=True)
        return False


def _request_compile(slot_key: _SlotKey, slot: _Slot) -> None:
    """Queue `slot_key` for the background compiler (under `_lock`)."""
    global _compiler
    if slot.compiling or slot.compile_failed:
        return
    slot.compiling = True
    _pending.append(slot_key)
    while len(_pending) > MAX_PENDING_COMPILES:
        dropped = _slots.get(_pending.popleft())
        if dropped is not None:
            dropped.compiling = False
    if _compiler is None or not _compiler.is_alive():
        _compiler = threading.Thread(target=_compile_forever, name="gradwatch-xla", daemon=True)
        _compiler.start()
    _wake.notify()


def wait_for_compiles(timeout: float | None = None) -> bool:
    """Block until the background compiler has nothing queued or under way; False on
    timeout. For tests and benchmarks."""
    with _wake:
        return _wake.wait_for(
            lambda: not _pending and not any(s.compiling for s in _slots.values()), timeout
        )


def _compile_forever() -> None:
    while (slot_key := _next_compile()) is not None:
        trainer = None
        started = time.perf_counter()
        try:
            trainer = _new_trainer(slot_key, jit=True)
            warm_up(trainer, slot_key[1])
            logger.info("XLA compiled in the background in %.2f s", time.perf_counter() - started)
        except Exception:
            logger.exception("compiling XLA in the background failed; runs stay on the plain graph")
            trainer = None
        with _wake:
            slot = _slots.get(slot_key)
            if slot is not None:
                slot.compiling = False
                if trainer is None:
                    slot.compile_failed = True
                else:
                    slot.xla.append(trainer)
            _wake.notify_all()
        for listener in _listeners:
            try:
                listener()
            except Exception:
                logger.exception("a listener of the warm graphs failed")


def _next_compile() -> _SlotKey | None:
    """The next network to compile, once the gate is open; None as the process ends.

    Beside a run, not only between runs: jobs posted one after another leave no
    gap between them, so a compile that waits for one never starts, and a
    network's repeats would stay on the plain graph. While no job waits, a run
    leaves a core of a 2-core host free. Not at a lower priority either: tracing
    holds the GIL, and a thread that holds it while the scheduler starves it (a
    busy host) holds up the run that waits for it, far longer than the compile
    would have taken at full priority.
    """
    while True:
        with _wake:
            _wake.wait_for(lambda: bool(_pending) or _exiting)
            if _exiting:
                return None
        if not _gate_open():
            with _wake:
                _wake.wait(GATE_SECONDS)
            continue
        with _wake:
            if _pending and not _exiting:
                return _pending.popleft()


def warm_up(trainer: Trainer, shapes: Shapes) -> None:
    """Build every graph a run of `shapes` calls, by running each once on zeros of the
    run's shapes and types: an epoch, evaluation (any number of rows) and, on 2-D data,
    the decision surface. The trainer's variables change: `reset` it before a run, as
    every run does."""
    lead: tuple[int, ...] = (trainer.members,) if isinstance(trainer, EnsembleTrainer) else ()
    architecture = trainer.key.architecture
    layered = getattr(architecture, "shapes", None)
    # A layer list's samples keep their shape (an image, a sequence); an MLP's are flat.
    sample = tuple(layered.layers[0].input_shape) if layered is not None else (shapes.features,)
    x = np.zeros((*lead, shapes.samples, *sample), np.float32)
    y = np.zeros((*lead, shapes.samples), np.float32 if architecture.regression else np.int32)
    probe = np.zeros((*lead, shapes.probe, *sample), np.float32)
    with tracing_all():
        trainer.train_epoch(x, y, probe, batch_size=shapes.batch_size)
        trainer.evaluate(x, y)
        if sample == (2,):
            grid = np.zeros((*lead, BOUNDARY_RESOLUTION**2, 2), np.float32)
            trainer.predict(grid)
