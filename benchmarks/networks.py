"""Layer-list networks on both kinds of graph, cold and warm, capturing every epoch or step.

    python benchmarks/networks.py [--epochs 5] [--only lstm,conv]

For each network: seconds per epoch on the plain graph and on XLA, cold (the
first run of its shape in this process: tracing or compiling included) and
warm (a second run: the graph reused), capturing every epoch and every step;
the arithmetic rate a warm epoch reaches (forward float operations per sample,
counted by core/experiment/layer_shapes.py, x 3 for the backward pass, x samples /
seconds), which is what `Limits.FLOPS` and `Limits.STEP_FLOPS` are set from;
and one warm optimizer step's seconds (its largest batch: the bound on how long
a cancel waits).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.engine import graph_cache
from core.engine.run import run_experiment
from core.experiment.sizing import layered_shapes, steps_per_epoch
from core.experiment.spec import ExperimentSpec

CONV_BLOCK = [
    {"class_name": "Conv2D", "config": {"filters": 16, "kernel_size": 3, "padding": "same"}},
    {"class_name": "Activation", "config": {"activation": "relu"}},
]
NETWORKS: dict[str, dict[str, Any]] = {
    # The issue's own figure: LSTM(32) on sequences of 100.
    "lstm": {
        "dataset": {"kind": "adding", "sequence_length": 100, "n_samples": 1000},
        "model": {"layers": [{"class_name": "LSTM", "config": {"units": 32}}]},
    },
    "gru500": {
        "dataset": {"kind": "recall", "sequence_length": 500, "n_samples": 512, "classes": 4},
        "model": {"layers": [{"class_name": "GRU", "config": {"units": 16}}]},
    },
    "rnn": {
        "dataset": {"kind": "recall", "sequence_length": 50, "n_samples": 1000, "classes": 4},
        "model": {"layers": [{"class_name": "SimpleRNN", "config": {"units": 32}}]},
    },
    "conv": {
        "dataset": {"kind": "bars", "image_size": 16, "n_samples": 1000, "noise": 1.0},
        "model": {
            "layers": [
                *CONV_BLOCK,
                *CONV_BLOCK,
                {"class_name": "MaxPooling2D"},
                *CONV_BLOCK,
                {"class_name": "GlobalAveragePooling2D"},
            ]
        },
    },
}


def timed(payload: dict[str, Any], *, every: str, epochs: int) -> float:
    spec = ExperimentSpec.model_validate(
        {**payload, "seed": 1, "training": {"epochs": epochs}, "capture": {"every": every}}
    )
    started = time.perf_counter()
    run_experiment(spec)
    return time.perf_counter() - started


def measure(name: str, payload: dict[str, Any], epochs: int) -> None:
    spec = ExperimentSpec.model_validate({**payload, "training": {"epochs": epochs}})
    shapes = layered_shapes(spec)
    assert shapes is not None
    samples = spec.dataset.n_samples
    print(f"\n{name}: {shapes.flops:,} forward flops/sample, {shapes.parameters:,} parameters")
    for mode in ("never", "always"):
        graph_cache.set_xla_mode(mode)
        row = []
        for every in ("epoch", "step"):
            cold = timed(payload, every=every, epochs=epochs) / epochs
            warm = timed(payload, every=every, epochs=epochs) / epochs
            row.append((every, cold, warm))
        kind = "XLA  " if mode == "always" else "plain"
        (_, cold_e, warm_e), (_, cold_s, warm_s) = row
        rate = 3 * shapes.flops * samples / warm_e / 1e9
        step = warm_e / steps_per_epoch(spec)
        print(
            f"  {kind} s/epoch: epoch capture cold {cold_e:.3f} warm {warm_e:.3f}; "
            f"step capture cold {cold_s:.3f} warm {warm_s:.3f} ({warm_s / warm_e:.2f}x); "
            f"{rate:.2f} GFLOP/s; {step * 1000:.1f} ms/step"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--only", default=",".join(NETWORKS))
    args = parser.parse_args()
    for name in args.only.split(","):
        measure(name, NETWORKS[name], args.epochs)


if __name__ == "__main__":
    main()
