"""Layer-list networks on both kinds of graph, cold and warm, capturing every epoch or step.

    python benchmarks/networks.py [--epochs 5] [--only lstm,conv] [--probe-size 256]
        [--no-activations] [--graphs plain,xla]
    python benchmarks/networks.py --tiers [--epochs 3] [--repeats 2] [--only lstm-adding,...]

For each network: seconds per epoch on the plain graph and on XLA, cold (the
first run of its shape in this process: tracing or compiling included) and
warm (a second run: the graph reused), capturing every epoch and every step;
the warm runs' CPU seconds per epoch too (this process's, every thread's),
which a machine shared with other work inflates less than wall time;
the arithmetic rate a warm epoch reaches (forward float operations per sample,
counted by core/experiment/layer_shapes.py, x 3 for the backward pass, x samples /
seconds), which is what `Limits.FLOPS` and `Limits.STEP_FLOPS` are set from;
and one warm optimizer step's seconds (its largest batch: the bound on how long
a cancel waits). `--probe-size` and `--no-activations` set `capture.probe_size`
and turn `capture.activations` off: what the activation probe (at each epoch's
start and end) and a step point's statistics of its batch's activations cost.
`--parts` times instead the graph functions an epoch is made of, each called
alone on a warm trainer: one
optimizer step on a batch, one probe pass, one evaluation pass over a probe's
rows (best of three rounds of 20 calls).

`--tiers` times instead the networks the presets train (`lstm-adding`,
`lstm-recall`, `conv-digits`, each configuration of the `recurrent-cells` and
`conv-depth` studies, and the tutorial's MLP beside them), each as its preset
has it but for `--epochs`, on the plain graph and on XLA side by side: per
repeat, for each network, a cold run of each kind (the cache emptied first: its
first call traces, or compiles, every graph) and then a warm one (the graph
reused), the kinds' order alternating between repeats. The table gives the
medians: the cold run's seconds, the warm run's seconds (and CPU seconds) per
epoch, XLA's warm speed-up, and the epochs after which compiling XLA first
repays its compile. This is what the tier rule (core.engine.graph_cache.TIER_RULES)
is set from.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from core.engine import graph_cache
from core.engine.graph_calls import graph_function
from core.engine.layered import LayeredArchitecture
from core.engine.run import run_experiment
from core.engine.trainer import CompiledTrainer
from core.experiment.presets import preset
from core.experiment.sizing import layered_shapes, steps_per_epoch
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import StudyRequest, expand_study

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


GRAPHS: dict[str, graph_cache.XlaMode] = {"plain": "never", "xla": "always"}


def cpu_seconds() -> float:
    """This process's CPU time so far, every thread's, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(
    payload: dict[str, Any], *, every: str, epochs: int, capture: dict[str, Any]
) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    spec = ExperimentSpec.model_validate(
        {
            **payload,
            "seed": 1,
            "training": {"epochs": epochs},
            "capture": {**capture, "every": every},
        }
    )
    started, cpu = time.perf_counter(), cpu_seconds()
    run_experiment(spec)
    return time.perf_counter() - started, cpu_seconds() - cpu


def measure(
    name: str, payload: dict[str, Any], epochs: int, capture: dict[str, Any], graphs: list[str]
) -> None:
    spec = ExperimentSpec.model_validate({**payload, "training": {"epochs": epochs}})
    shapes = layered_shapes(spec)
    assert shapes is not None
    samples = spec.dataset.n_samples
    print(f"\n{name}: {shapes.flops:,} forward flops/sample, {shapes.parameters:,} parameters")
    for graph in graphs:
        graph_cache.set_xla_mode(GRAPHS[graph])
        row = []
        for every in ("epoch", "step"):
            cold, _ = timed(payload, every=every, epochs=epochs, capture=capture)
            warm, warm_cpu = timed(payload, every=every, epochs=epochs, capture=capture)
            row.append((cold / epochs, warm / epochs, warm_cpu / epochs))
        (cold_e, warm_e, cpu_e), (cold_s, warm_s, cpu_s) = row
        rate = 3 * shapes.flops * samples / warm_e / 1e9
        step = warm_e / steps_per_epoch(spec)
        print(
            f"  {graph:5} s/epoch: epoch capture cold {cold_e:.3f} warm {warm_e:.3f} "
            f"(CPU {cpu_e:.3f}); step capture cold {cold_s:.3f} warm {warm_s:.3f} "
            f"(CPU {cpu_s:.3f}); step/epoch warm {warm_s / warm_e:.2f}x, "
            f"CPU {cpu_s / cpu_e:.2f}x; {rate:.2f} GFLOP/s; {step * 1000:.1f} ms/step"
        )


def _part_calls(
    trainer: CompiledTrainer, jit: bool, x: np.ndarray, y: np.ndarray, probe: int
) -> dict[str, tuple[Any, tuple[np.ndarray, ...]]]:
    """The graph functions `parts` times, each with its arguments: a step on the first
    rows of x (as many as y has), a probe and an evaluation on its first `probe` rows."""
    batch = len(y)
    mask = np.ones(batch, np.float32)

    def step(a: Any, b: Any, m: Any) -> Any:
        return trainer._step(a, b, m)["loss"]

    def evaluation(a: Any) -> Any:
        return trainer.network.forward(a, training=False).logits

    return {
        "step": (graph_function(step, jit=jit), (x[:batch], y, mask)),
        "probe": (graph_function(trainer._probe, jit=jit), (x[:probe],)),
        "evaluation": (graph_function(evaluation, jit=jit), (x[:probe],)),
    }


def parts(name: str, payload: dict[str, Any], capture: dict[str, Any], graphs: list[str]) -> None:
    """Milliseconds of one training step, one probe pass and one evaluation pass."""
    spec = ExperimentSpec.model_validate({**payload, "seed": 1, "capture": capture})
    architecture = LayeredArchitecture.from_spec(spec)
    key = graph_cache.trainer_key(architecture, spec.training, step_capture=True, raw=False)
    rng = np.random.default_rng(1)
    batch, probe = spec.training.batch_size, spec.capture.probe_size
    shape = tuple(architecture.shapes.layers[0].input_shape)
    x = rng.standard_normal((max(batch, probe), *shape)).astype(np.float32)
    y = np.zeros(batch, np.float32 if spec.dataset.regression else np.int32)
    print(f"\n{name}: batch {batch}, probe {probe}")
    for graph in graphs:
        jit = graph == "xla"
        calls = _part_calls(CompiledTrainer(key, jit=jit), jit, x, y, probe)
        figures = []
        for part, (fn, args) in calls.items():
            np.asarray(fn(*args))
            rounds = []
            for _ in range(3):
                started, cpu = time.perf_counter(), cpu_seconds()
                for _ in range(20):
                    np.asarray(fn(*args))
                rounds.append(((time.perf_counter() - started) / 20, (cpu_seconds() - cpu) / 20))
            wall, cpu_time = min(rounds)
            figures.append(f"{part} {wall * 1000:.1f} ms (CPU {cpu_time * 1000:.1f})")
        print(f"  {graph:5} " + "; ".join(figures))


def tier_networks() -> dict[str, dict[str, Any]]:
    """The presets' networks, and each configuration of the layer-list study presets,
    as specs (one seed each), by name."""
    networks: dict[str, dict[str, Any]] = {
        name: dict(preset(name).spec)
        for name in ("deep-sigmoid-normal", "lstm-adding", "lstm-recall", "conv-digits")
    }
    cells = expand_study(StudyRequest(preset="recurrent-cells", seeds=1))
    for config, child in zip(cells.configs, cells.children, strict=True):
        cell = config.values["model.layers"][0]["class_name"]
        length = config.values["dataset.sequence_length"]
        networks[f"cells-{cell}-T{length}"] = child.model_dump(mode="json")
    depth = expand_study(StudyRequest(preset="conv-depth", seeds=1))
    variants = ("sigmoid", "sigmoid-bn", "sigmoid-residual", "relu")  # the study's order
    for variant, child in zip(variants, depth.children, strict=True):
        networks[f"depth-{variant}"] = child.model_dump(mode="json")
    return networks


def kind_of(spec: ExperimentSpec) -> str:
    """The spec's network's kind, as the tier rule names it (an MLP's is `mlp`)."""
    if layered_shapes(spec) is None:
        return "mlp"
    return graph_cache.network_kind(LayeredArchitecture.from_spec(spec))


def _tier_run(payload: dict[str, Any], graph: str, epochs: int) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `payload` pinned to `graph`."""
    spec = ExperimentSpec.model_validate(
        {
            **payload,
            "seed": 1,
            "training": {**payload.get("training", {}), "epochs": epochs, "graph": graph},
        }
    )
    started, cpu = time.perf_counter(), cpu_seconds()
    output = run_experiment(spec)
    assert output.result["timing"]["graph"] == graph
    return time.perf_counter() - started, cpu_seconds() - cpu


Figures = dict[tuple[str, str], list[tuple[float, float, float, float]]]


def tiers(names: list[str], epochs: int, repeats: int) -> None:
    """Cold and warm seconds of each network on either kind of graph, side by side."""
    networks = tier_networks()
    for graph in GRAPHS:  # the process's one-off costs (imports, first trace) paid here
        _tier_run(networks["deep-sigmoid-normal"], graph, 1)
    figures: Figures = {}
    for repeat in range(repeats):
        for name in names:
            kinds = list(GRAPHS) if (repeat + names.index(name)) % 2 == 0 else list(GRAPHS)[::-1]
            for graph in kinds:
                graph_cache.clear()
                cold, cold_cpu = _tier_run(networks[name], graph, epochs)
                warm, warm_cpu = _tier_run(networks[name], graph, epochs)
                figures.setdefault((name, graph), []).append((cold, cold_cpu, warm, warm_cpu))
                print(f"  {name} {graph}: cold {cold:.2f} s, warm {warm:.2f} s", flush=True)
        # The table so far after each repeat: a run cut short still leaves its figures.
        tier_table(networks, names, figures, epochs)
        print(f"load average {os.getloadavg()}", flush=True)


def tier_table(
    networks: dict[str, dict[str, Any]], names: list[str], figures: Figures, epochs: int
) -> None:
    """The medians of `figures` (cold, cold CPU, warm, warm CPU seconds of each run) as
    a table, a row per network."""
    repeats = len(figures[(names[0], "plain")])
    print(f"\n{epochs} epochs a run, medians of {repeats}; seconds (CPU seconds)")
    print(
        "| network | kind | plain: cold run / warm epoch | XLA: cold run / warm epoch "
        "| XLA's warm speed-up | XLA repays its compile after |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for name in names:
        spec = ExperimentSpec.model_validate(networks[name])
        (p_cold, p_cold_cpu, p_warm, p_cpu), (x_cold, x_cold_cpu, x_warm, x_cpu) = (
            tuple(statistics.median(f[i] for f in figures[(name, graph)]) for i in range(4))
            for graph in GRAPHS
        )
        saving = (p_warm - x_warm) / epochs  # a warm epoch, XLA against plain
        extra = (x_cold - x_warm) - (p_cold - p_warm)  # XLA's compile beyond the plain trace
        repays = f"{extra / saving:.0f} epochs" if saving > 0 else "never"
        print(
            f"| {name} | {kind_of(spec)} "
            f"| {p_cold:.2f} ({p_cold_cpu:.2f}) / {p_warm / epochs:.3f} ({p_cpu / epochs:.3f}) "
            f"| {x_cold:.2f} ({x_cold_cpu:.2f}) / {x_warm / epochs:.3f} ({x_cpu / epochs:.3f}) "
            f"| {p_warm / x_warm:.2f}x | {repays} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--only", default=",".join(NETWORKS))
    parser.add_argument("--probe-size", type=int, default=256, help="capture.probe_size")
    parser.add_argument(
        "--no-activations", action="store_true", help="capture.activations off: no probe"
    )
    parser.add_argument("--graphs", default="plain,xla", help="plain, xla or both")
    parser.add_argument("--parts", action="store_true", help="time a step, a probe, an evaluation")
    parser.add_argument("--tiers", action="store_true", help="the presets' networks, cold and warm")
    parser.add_argument("--repeats", type=int, default=2, help="--tiers: rounds to take medians of")
    args = parser.parse_args()
    if args.tiers:
        print(f"load average {os.getloadavg()} on {os.cpu_count()} cores", flush=True)
        names = list(tier_networks()) if args.only == ",".join(NETWORKS) else args.only.split(",")
        tiers(names, args.epochs, args.repeats)
        return
    capture = {"probe_size": args.probe_size, "activations": not args.no_activations}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; capture {capture}")
    for name in args.only.split(","):
        if args.parts:
            parts(name, NETWORKS[name], capture, args.graphs.split(","))
        else:
            measure(name, NETWORKS[name], args.epochs, capture, args.graphs.split(","))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
