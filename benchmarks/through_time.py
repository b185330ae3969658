"""What capturing ||dL/dh_t|| costs: a recurrent network's warm epoch with and without it.

    python benchmarks/through_time.py [--only lstm,rnn] [--epochs 2] [--repeats 3]

With the capture, the engine adds a zero to every hidden state, watches it on the
step's tape and records the norms of its gradient; without it (a switch this script
sets by patching the engine while it traces), no zeros are watched and nothing is
recorded. Each network of benchmarks/networks.py runs on the plain graph, capturing
every epoch and every step, the two kinds alternating `--repeats` times in one
process (a cold run to trace, then a warm run timed). Printed: the median warm
seconds per epoch of each, in wall and in CPU seconds (which a loaded machine
inflates least), and the median of the ratio of each pair run one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
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
from core.experiment.spec import ExperimentSpec


def timed(
    payload: dict[str, Any], *, every: str, epochs: int, through_time: bool
) -> tuple[float, float]:
    """(wall, CPU) seconds of one run, checking it kept the norms or did not."""
    spec = ExperimentSpec.model_validate(
        {**payload, "seed": 1, "training": {"epochs": epochs}, "capture": {"every": every}}
    )
    started, cpu = time.perf_counter(), time.process_time()
    out = run_experiment(spec)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if (out.result.get("through_time") is not None) != through_time:
        raise SystemExit(f"the run {'lacks' if through_time else 'has'} through-time norms")
    return seconds, cpu


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


def measure(name: str, payload: dict[str, Any], epochs: int, repeats: int) -> None:
    graph_cache.set_xla_mode("never")
    print(f"\n{name}: plain graph, warm epoch with / without, median of {repeats} pairs")
    for every in ("epoch", "step"):
        wall: dict[str, list[float]] = {"with": [], "without": []}
        cpu: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(repeats):
            for kind in ("with", "without"):
                kept = kind == "with"
                switch = contextlib.nullcontext() if kept else without_through_time()
                with switch:
                    if kept:
                        graph_cache.clear()
                    timed(payload, every=every, epochs=epochs, through_time=kept)  # traces
                    seconds, cpu_seconds = timed(
                        payload, every=every, epochs=epochs, through_time=kept
                    )
                wall[kind].append(seconds / epochs)
                cpu[kind].append(cpu_seconds / epochs)
        for what, figures in (("wall", wall), ("CPU", cpu)):
            on, off = (statistics.median(figures[kind]) for kind in ("with", "without"))
            pairs = [a / b for a, b in zip(figures["with"], figures["without"], strict=True)]
            print(
                f"  every {every}, {what} s/epoch: {on:.3f} / {off:.3f}; paired ratio median "
                f"{statistics.median(pairs):.3f}x (min {min(pairs):.3f}, max {max(pairs):.3f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="lstm,rnn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    for name in args.only.split(","):
        measure(name, NETWORKS[name], args.epochs, args.repeats)
    after = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nload average before: {load}; after: {after}")


if __name__ == "__main__":
    main()
