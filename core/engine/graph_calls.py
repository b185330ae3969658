"""How the engine's graph functions are traced and called: cheaply.

`graph_function` makes a trainer's methods graph functions (XLA-compiled or plain) and
calls each straight through the concrete function traced for its arguments' shapes,
on a CPU under TensorFlow's single-threaded executor; `unrolls_probe` says where a
probe unrolls its small products. Used by core.engine.trainer and core.engine.ensemble.

This module imports TensorFlow; only the engine imports it.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context as eager_context
from tensorflow.python.eager import record as tape_record


def graph_function(
    fn: Callable[..., Any], *, jit: bool, rows_axis: int | None = None, eager_calls: int = 0
) -> Callable[..., Any]:
    """`fn` as a TensorFlow graph function: XLA-compiled with `jit`, else a plain graph.

    The graph code is plain TensorFlow with explicit while loops: AutoGraph's
    source rewriting would double a cold run's tracing time. A plain graph is
    traced and run under `_lean_calls` where it can be. Calls go straight to
    the concrete function traced for their arguments' shapes: `tf.function`'s
    own dispatch costs 0.1-0.25 ms a call, up to a quarter of a warm epoch. With
    `rows_axis`, array arguments' sizes on that axis (their rows) may vary: one
    graph serves them all (evaluation on the training and validation parts). The first
    `eager_calls` calls run `fn` op by op instead, untraced: a function that a run calls
    once (its final evaluation, its decision surface) costs a network's first run more
    to trace (30-100 ms) than to run eagerly (about a millisecond), and is traced once
    it is called again; except under `tracing_all`, where every call traces.
    """
    compiled = tf.function(fn, jit_compile=jit, autograph=False)
    lean = not jit and _lean_options() is not None
    concrete: dict[tuple[Any, ...], Any] = {}

    def spec(a: Any) -> Any:
        if not isinstance(a, np.ndarray | tf.Tensor):
            return a
        shape = list(a.shape)
        if rows_axis is not None:
            shape[rows_axis] = None
        return tf.TensorSpec(shape, a.dtype)

    eager = eager_calls

    def call(*args: Any) -> Any:
        nonlocal eager
        if eager > 0:
            if not getattr(_tracing, "all", False):
                eager -= 1
                return fn(*args)
            eager = 0  # traced now: every later call takes the graph
        specs = tuple(spec(a) for a in args)
        with _lean_calls() if lean else contextlib.nullcontext():
            function = concrete.get(specs)
            if function is None:
                function = concrete[specs] = _DirectCall(compiled.get_concrete_function(*specs))
            return function(*args)

    return call


_tracing = threading.local()


@contextmanager
def tracing_all() -> Iterator[None]:
    """This thread's graph functions trace from their first call (see `graph_function`):
    for a warm-up, which builds a trainer's graphs so that its runs need not."""
    previous = getattr(_tracing, "all", False)
    _tracing.all = True
    try:
        yield
    finally:
        _tracing.all = previous


class _DirectCall:
    """A concrete function, called with its arguments' arrays as its flat inputs.

    A concrete function's own call binds its arguments to its signature anew
    each time (~1 ms a call in Python, a tenth of a warm run of the tutorial's
    100 epochs). The arguments here are flat (arrays and Python constants the
    graph was traced for), so the arrays, in order, followed by the captured
    variables, are the function's inputs: that list goes straight to the traced
    function. Where that does not hold (a nested argument, an input count that
    does not match) or a gradient tape watches, the function's own call serves.
    """

    def __init__(self, function: Any) -> None:
        self.function = function
        self._inference = getattr(function, "_inference_function", None)
        self._captured = list(function.captured_inputs)
        self._arrays = len(function.inputs) - len(self._captured)

    def __call__(self, *args: Any) -> Any:
        flat = [a for a in args if isinstance(a, np.ndarray | tf.Tensor)]
        if (
            self._inference is None
            or len(flat) != self._arrays
            or any(isinstance(a, list | tuple | dict) for a in args)
            or tape_record.could_possibly_record()
        ):
            return self.function(*args)
        inputs = [a if isinstance(a, tf.Tensor) else tf.constant(a) for a in flat]
        return self._inference.call_preflattened(inputs + self._captured)


@functools.cache
def _gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU (it lists devices without initialising them)."""
    return bool(tf.config.list_physical_devices("GPU"))


def unrolls_probe(jit: bool) -> bool:
    """Whether a graph's probe unrolls its products of a small fan-in (see
    `core.engine.network.affine`): under XLA on a CPU, where that was measured to pay,
    and only while tracing; run op by op (a run's start), each term would be an op of
    its own (10 ms of a warm run of six layers of five)."""
    return jit and not _gpu_visible() and not tf.executing_eagerly()


@functools.cache
def _lean_options() -> eager_context.FunctionCallOptions | None:
    """Call options for plain graphs on a CPU: TensorFlow's single-threaded executor,
    and no Grappler.

    A small net's step is a few hundred tiny ops, so what a plain graph costs is
    the runtime's overhead per op: the single-threaded executor runs them inline,
    in order (an epoch ~25% faster than on the default executor on 2 cores), and
    Grappler's rewrites, ~0.12 s at a graph's first call, buy nothing here. The
    executor takes neither devices other than the CPU nor lowered control flow,
    so it is used only where TensorFlow sees no GPU, and graphs are traced under
    it too (their loops then stay functional). None where a GPU is visible.
    """
    if _gpu_visible():
        return None
    config = config_pb2.ConfigProto()
    config.ParseFromString(eager_context.context().function_call_options.config_proto_serialized)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return eager_context.FunctionCallOptions(
        executor_type="SINGLE_THREADED_EXECUTOR", config_proto=config
    )


@contextmanager
def _lean_calls() -> Iterator[None]:
    """This thread's graph function calls (and tracing) use `_lean_options`."""
    ctx = eager_context.context()
    previous = ctx.function_call_options
    ctx.function_call_options = _lean_options()
    try:
        yield
    finally:
        ctx.function_call_options = previous
