"""What capturing ||dL/dh_t|| costs: a recurrent network's warm epoch with and without it;
with `--capture channels`, what the per-channel gradient norms of convolutions cost.

    python benchmarks/through_time.py [--only lstm,rnn] [--epochs 2] [--repeats 3]
    python benchmarks/through_time.py --capture channels --only conv-digits,conv

With the capture, the engine adds a zero to every hidden state, watches it on the
step's tape and records the norms of its gradient; without it (a switch this script
sets by patching the engine while it traces), no zeros are watched and nothing is
recorded. Per channel: with it, each convolution's kernel gradient is reduced to
one norm per output channel in the step and recorded; without it, neither. Each
network of benchmarks/networks.py (or a preset, `conv-digits`, with its own training
but `--epochs`) runs on the plain graph, capturing every epoch and every step, the
two kinds alternating `--repeats` times in one process (a cold run to trace, then a
warm run timed). Printed: the median warm seconds per epoch of each, in wall and in
CPU seconds (which a loaded machine inflates least) and in training seconds (the
result's own `timing.seconds`, without its assembly afterwards, whose PCA of the
data's points alone varies by tenths of a second on a busy machine: what a small
network's capture costs is seen there), and the median of the ratio of each pair
run one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.networks import NETWORKS
from core.engine import graph_cache
from core.engine.layered import LayeredNetwork
from core.engine.run import run_experiment
from core.engine.trainer import CompiledTrainer
from core.experiment.presets import preset
from core.experiment.spec import ExperimentSpec

CAPTURES = ("through_time", "channels")  # the result sections a switch keeps or drops


def network(name: str) -> dict[str, Any]:
    """benchmarks/networks.py's network, or a preset's spec."""
    return NETWORKS[name] if name in NETWORKS else dict(preset(name).spec)


def timed(
    payload: dict[str, Any], *, every: str, epochs: int, capture: str, kept: bool
) -> tuple[float, float, float]:
    """(wall, CPU, training) seconds of one run, checking it kept the norms or did not;
    training is the result's `timing.seconds` (loading the data to the end of training),
    without the result's assembly (a PCA of the data's points, the diagnosis)."""
    training = {**payload.get("training", {}), "epochs": epochs}
    spec = ExperimentSpec.model_validate(
        {**payload, "seed": 1, "training": training, "capture": {"every": every}}
    )
    started, cpu = time.perf_counter(), time.process_time()
    out = run_experiment(spec)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if (out.result.get(capture) is not None) != kept:
        raise SystemExit(f"the run {'lacks' if kept else 'has'} {capture} norms")
    return seconds, cpu, float(out.result["timing"]["seconds"])


@contextlib.contextmanager
def without(capture: str) -> Iterator[None]:
    """Graphs traced meanwhile capture no `capture` norms (see the two below)."""
    with without_channels() if capture == "channels" else without_through_time():
        yield


@contextlib.contextmanager
def without_channels() -> Iterator[None]:
    """Graphs traced meanwhile reduce no convolution's gradient by channel and record
    nothing of it (graphs traced before are forgotten on entry and on exit)."""
    kernels = LayeredNetwork.conv_kernels
    graph_cache.clear()
    LayeredNetwork.conv_kernels = property(lambda self: [])  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        LayeredNetwork.conv_kernels = kernels  # type: ignore[method-assign]
        graph_cache.clear()


@contextlib.contextmanager
def without_through_time() -> Iterator[None]:
    """Graphs traced meanwhile add no watched zeros to the hidden states and record no
    through-time norms (graphs traced before are forgotten on entry and on exit)."""
    zeros, arrays = LayeredNetwork.zero_perturbations, CompiledTrainer._epoch_arrays

    def epoch_arrays(self: CompiledTrainer, **kwargs: Any) -> dict[str, Any]:
        out = arrays(self, **kwargs)
        out.pop("through_time", None)
        return out

    graph_cache.clear()
    LayeredNetwork.zero_perturbations = lambda self, batch: []  # type: ignore[method-assign]
    CompiledTrainer._epoch_arrays = epoch_arrays  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        LayeredNetwork.zero_perturbations = zeros  # type: ignore[method-assign]
        CompiledTrainer._epoch_arrays = arrays  # type: ignore[method-assign]
        graph_cache.clear()


def measure(name: str, capture: str, epochs: int, repeats: int) -> None:
    payload = network(name)
    graph_cache.set_xla_mode("never")
    print(f"\n{name}: {capture}, plain graph, warm epoch with / without, median of {repeats} pairs")
    for every in ("epoch", "step"):
        wall: dict[str, list[float]] = {"with": [], "without": []}
        cpu: dict[str, list[float]] = {"with": [], "without": []}
        train: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(repeats):
            for kind in ("with", "without"):
                kept = kind == "with"
                switch = contextlib.nullcontext() if kept else without(capture)
                with switch:
                    if kept:
                        graph_cache.clear()
                    run = functools.partial(
                        timed, payload, every=every, epochs=epochs, capture=capture, kept=kept
                    )
                    run()  # traces
                    seconds, cpu_seconds, training = run()
                wall[kind].append(seconds / epochs)
                cpu[kind].append(cpu_seconds / epochs)
                train[kind].append(training / epochs)
        for what, figures in (("wall", wall), ("CPU", cpu), ("training", train)):
            on, off = (statistics.median(figures[kind]) for kind in ("with", "without"))
            pairs = [a / b for a, b in zip(figures["with"], figures["without"], strict=True)]
            print(
                f"  every {every}, {what} s/epoch: {on:.3f} / {off:.3f}; paired ratio median "
                f"{statistics.median(pairs):.3f}x (min {min(pairs):.3f}, max {max(pairs):.3f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--capture", choices=CAPTURES, default="through_time")
    parser.add_argument("--only", default="lstm,rnn", help="networks.py's names or presets")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    for name in args.only.split(","):
        measure(name, args.capture, args.epochs, args.repeats)
    after = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nload average before: {load}; after: {after}")


if __name__ == "__main__":
    main()
