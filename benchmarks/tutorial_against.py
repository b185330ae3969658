"""The engine's tutorial runs on this tree beside other checkouts, alternating fresh processes.

    mkdir -p /tmp/prechunk && git archive b484651^ | tar -x -C /tmp/prechunk
    .venv/bin/python benchmarks/tutorial_against.py --runs 7 --tree before=/tmp/prechunk

Rows (c) and (d) of benchmarks/tutorial.py (the tutorial experiment, the engine
capturing every epoch, then every step), each timed cold (a shape's first run in
a fresh process, the plain graph: `gradwatch run`) and warm (the XLA graph the
shape's first job compiled: a worker's later jobs, the median of `--repeats`);
then one epoch of its graph alone, capturing every epoch, on each kind of graph
(the fastest of `EPOCH_CALLS` calls: what a step's ops cost, least inflated by
the load of a shared machine).
Every run starts one fresh process per tree, in turn, the order rotating from run
to run so that neither tree always goes first; the tables give the median over
runs of wall time and of the process's CPU time (all its threads: what a loaded
machine inflates less), each tree's ratio to this one, and the load average
seen during the runs.
The child processes import `core` from the tree given (PYTHONPATH), so any commit
whose engine has `run_experiment(spec)` and `graph_cache.set_xla_mode` can be timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent.parent
ROWS = (
    "epoch cold",
    "epoch warm",
    "step cold",
    "step warm",
    "one epoch, plain (ms)",
    "one epoch, xla (ms)",
)
EPOCH_CALLS = 200  # calls of a trainer's epoch, the fastest kept (the "one epoch" rows)


def child(repeats: int) -> None:
    """Time the four rows in this process, `core` from PYTHONPATH; print them as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.engine import graph_cache
    from core.engine.run import run_experiment
    from core.experiment.spec import ExperimentSpec

    times: dict[str, float] = {}
    for every in ("epoch", "step"):
        spec = ExperimentSpec.model_validate({"seed": 1, "capture": {"every": every}})

        def run(spec: ExperimentSpec = spec) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            run_experiment(spec)
            return time.perf_counter() - wall, time.process_time() - cpu

        graph_cache.set_xla_mode("auto")  # gradwatch run: the plain graph
        times[f"{every} cold"], times[f"cpu {every} cold"] = run()
        graph_cache.set_xla_mode("always")  # a worker
        run()  # the shape's first job compiles XLA
        warm = [run() for _ in range(repeats)]
        times[f"{every} warm"] = statistics.median(wall for wall, _ in warm)
        times[f"cpu {every} warm"] = statistics.median(cpu for _, cpu in warm)
    # The epoch's graph alone, capturing every epoch: its fastest call of many, which
    # the load of a shared machine inflates least.
    (slot,) = [s for key, s in graph_cache._slots.items() if not key[0].step_capture]
    for kind, trainer in (("plain", slot.plain[0]), ("xla", slot.xla[0])):
        wall, cpu = fastest_epoch(trainer)
        times[f"one epoch, {kind} (ms)"], times[f"cpu one epoch, {kind} (ms)"] = wall, cpu
    print(json.dumps(times))


def fastest_epoch(trainer: Any) -> tuple[float, float]:
    """The fastest of `EPOCH_CALLS` calls of the trainer's epoch (wall and CPU milliseconds)
    on 800 rows of two features, 32 a step."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 2)).astype(np.float32)
    y = (rng.random(800) > 0.5).astype(np.int32)
    trainer.train_epoch(x, y, x[:64], batch_size=32)  # these rows' graph, traced
    walls, cpus = [], []
    for _ in range(EPOCH_CALLS):
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train_epoch(x, y, x[:64], batch_size=32)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return 1000 * min(walls), 1000 * min(cpus)


def time_tree(tree: Path, repeats: int) -> dict[str, float]:
    env = os.environ | {"PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, __file__, "--child", "--repeats", str(repeats)]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
    times: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="warm runs a process, median")
    parser.add_argument(
        "--tree", action="append", default=[], metavar="NAME=DIR", help="a checkout to time"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.repeats)
        return
    trees = {"this": HERE} | {
        name: Path(path).resolve() for name, path in (tree.split("=", 1) for tree in args.tree)
    }
    names = list(trees)
    seen: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    loads: list[float] = [os.getloadavg()[0]]
    for run in range(args.runs):
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            seen[name].append(time_tree(trees[name], args.repeats))
            loads.append(os.getloadavg()[0])
        line = "  ".join(f"{n}: {seen[n][-1]['epoch warm']:.3f}" for n in names)
        print(f"run {run + 1}/{args.runs} (warm, every epoch)  {line}", flush=True)

    for clock in ("wall", "cpu"):
        rows = ROWS if clock == "wall" else tuple(f"cpu {row}" for row in ROWS)
        print(f"\n{clock} seconds, median of {args.runs} runs [min-max]", end="")
        print(f" (warm: the median of {args.repeats} a run)")
        print(f"{'':26}" + "".join(f"{n:>22}" for n in names), end="")
        print("".join(f"{n + '/this':>14}" for n in names[1:]))
        for row in rows:
            values = {n: [t[row] for t in seen[n]] for n in names}
            median = {n: statistics.median(values[n]) for n in names}
            cells = "".join(
                f"{median[n]:.3f} [{min(values[n]):.2f}-{max(values[n]):.2f}]".rjust(22)
                for n in names
            )
            ratios = "".join(f"{median[n] / median['this']:14.2f}" for n in names[1:])
            print(f"{row:26}{cells}{ratios}")
    print(f"load average (1 min) during the runs: {min(loads):.2f} to {max(loads):.2f}")


if __name__ == "__main__":
    main()
