"""Render time of the default plots for real tutorial results, per plot and in total.

A worker renders every available plot at the default size when a job ends,
so this is the plots' share of a job's time. The results come from the
engine in this process: the tutorial (100 epochs, capture every epoch) and
the same run capturing every step (3,200 points per series). Each plot is
rendered once to warm up, then `--repeat` times; a plot's time is its
minimum over the repetitions (the machine is shared: the minimum is the
least disturbed), and the total is the sum of those minimums.

Run:

    .venv/bin/python benchmarks/plots.py [--repeat 9] [--seed 1]
    .venv/bin/python benchmarks/plots.py --against HEAD~3   # before/after, same run
    .venv/bin/python benchmarks/plots.py --result out/result.json  # a stored result
    .venv/bin/python benchmarks/plots.py --eager --median --against main  # what a job draws

`--eager` times only the plots a worker draws as a job ends (the tutorial's two, the
cold path's share), `--median` reports each plot's median instead of its minimum, with
its PNG's bytes.

`--against REV` also times the plotting package (`core/plotting/`) as of git revision REV,
rendering the same results alternately with the current one, so both see the same load; a
revision from before the plot catalog (core/plotting/catalog.py) is timed through its
`core/plotting/experiment_plots.py`.

Target (issue 3): all default plots of the tutorial in <= 0.35 s.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core.plotting.catalog  # noqa: E402
from core.plotting.kinds import PlotSize  # noqa: E402

Result = dict[str, Any]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed renders per plot (default 9)")
    parser.add_argument("--seed", type=int, default=1, help="the runs' seed (default 1)")
    parser.add_argument(
        "--result", action="append", type=Path, help="time this result.json instead (repeatable)"
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="also time core/plotting/ as of git revision REV",
    )
    parser.add_argument("--save", type=Path, help="also write the results' JSON into this folder")
    parser.add_argument(
        "--eager", action="store_true", help="only the plots drawn as a job ends (PlotKind.eager)"
    )
    parser.add_argument(
        "--median", action="store_true", help="each plot's median and PNG bytes, not its minimum"
    )
    args = parser.parse_args(argv)
    results = load_results(args.result) if args.result else run_tutorials(args.seed)
    if args.save:
        save_results(results, args.save)
    modules: dict[str, ModuleType] = {"current": core.plotting.catalog}
    if args.against:
        modules[args.against] = load_revision(args.against)
    size = f"{PlotSize.WIDTH}x{PlotSize.HEIGHT} at {PlotSize.DPI} dpi"
    catalog = core.plotting.catalog.EXPERIMENT_PLOTS
    statistic = "median" if args.median else "min"
    for label, result in results.items():
        names = [
            name for name in catalog.available(result) if not args.eager or catalog[name].eager
        ]
        print(f"\n{label}: {len(names)} plots, {size}, ms ({statistic} of {args.repeat})")
        timings = time_renders(modules, result, names, args.repeat, statistic=statistic)
        report(names, timings)
        if args.median:
            report_bytes(names, modules, result)
    return 0


def run_tutorials(seed: int) -> dict[str, Result]:
    """The tutorial from the engine, capturing every epoch and every step (warm graphs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.engine.run import run_experiment
    from core.experiment.spec import ExperimentSpec

    results: dict[str, Result] = {}
    for label, capture in (("tutorial", {}), ("tutorial, capture every step", {"every": "step"})):
        spec = ExperimentSpec.model_validate({"seed": seed, "capture": capture})
        started = time.perf_counter()
        results[label] = run_experiment(spec).result
        print(f"{label}: trained in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return results


def load_results(paths: Sequence[Path]) -> dict[str, Result]:
    return {str(path): json.loads(path.read_text()) for path in paths}


def save_results(results: dict[str, Result], folder: Path) -> None:
    from core.experiment.result import dumps_result

    folder.mkdir(parents=True, exist_ok=True)
    for index, result in enumerate(results.values()):
        (folder / f"result-{index}.json").write_text(dumps_result(result))


PACKAGE = "core/plotting"


def load_revision(revision: str, before_catalog: str = "experiment_plots") -> ModuleType:
    """The plotting package as of `revision`, imported beside this one under another name.

    Returns its `catalog` module, or for a revision from before the catalog, its
    `before_catalog` module (which has the same render functions). Imports of
    `core.plotting` inside it are pointed at the copy; the rest of `core` is today's.
    """
    listing = _git("ls-tree", "-r", "--name-only", revision, PACKAGE + "/")
    alias = "gradwatch_plotting_at_" + "".join(c if c.isalnum() else "_" for c in revision)
    folder = Path(tempfile.mkdtemp(prefix="gradwatch-plots-"))
    for path in listing.split():
        if not path.endswith(".py"):
            continue
        source = _git("show", f"{revision}:{path}").replace("core.plotting", alias)
        target = folder / alias / Path(path).relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
    sys.path.insert(0, str(folder))
    catalog = f"{PACKAGE}/catalog.py" in listing.split()
    return importlib.import_module(f"{alias}.{'catalog' if catalog else before_catalog}")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def time_renders(
    modules: dict[str, ModuleType],
    data: Any,
    names: list[str],
    repeat: int,
    *,
    render: str = "render_plot",
    statistic: str = "min",
) -> dict[str, dict[str, float]]:
    """Seconds per module and plot: the minimum (or the median) of `repeat` renders,
    after one to warm up.

    Each module's `render(name, data)` draws a plot. The modules take turns within
    each repetition, so both see the same load, and each render starts from a
    collected heap, so a collection never falls on one render rather than another.
    """
    times: dict[str, dict[str, list[float]]] = {
        label: {name: [] for name in names} for label in modules
    }
    for repetition in range(repeat + 1):
        for label, module in modules.items():
            for name in names:
                gc.collect()
                started = time.perf_counter()
                getattr(module, render)(name, data)
                elapsed = time.perf_counter() - started
                if repetition > 0:
                    times[label][name].append(elapsed)
    summary = statistics.median if statistic == "median" else min
    return {
        label: {name: summary(seconds) for name, seconds in by_name.items()}
        for label, by_name in times.items()
    }


def report(names: list[str], timings: dict[str, dict[str, float]]) -> None:
    labels = list(timings)
    print(f"  {'plot':<15}" + "".join(f"{label:>12}" for label in labels))
    for name in names:
        print(f"  {name:<15}" + "".join(f"{timings[label][name] * 1000:12.1f}" for label in labels))
    totals = [sum(timings[label].values()) * 1000 for label in labels]
    print(f"  {'total':<15}" + "".join(f"{total:12.1f}" for total in totals))


def report_bytes(names: list[str], modules: dict[str, ModuleType], result: Result) -> None:
    print(f"  {'PNG bytes':<15}" + "".join(f"{label:>12}" for label in modules))
    for name in names:
        sizes = [len(module.render_plot(name, result)) for module in modules.values()]
        print(f"  {name:<15}" + "".join(f"{size:12d}" for size in sizes))


if __name__ == "__main__":
    raise SystemExit(main())
