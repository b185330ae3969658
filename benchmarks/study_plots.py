"""Render time of a study's plots for real study series, per plot, at the default size.

A worker draws every available study plot at the default size when a study
ends, so this is the plots' share of sealing a study. The series come from
the engine in this process: the `tutorial` preset (3 configurations) and a
study of 12 configurations (4 depths x 3 activations), one seed each,
both from `--seed`. Each
plot is rendered once to warm up, then `--repeat` times; a plot's time is
its minimum over the repetitions (the machine is shared: the minimum is the
least disturbed). Each render starts from a collected heap, with the engine's
objects frozen out of the collector: a full collection over TensorFlow's half
a million objects takes 0.3-0.5 s here, and it falls on whichever render
happens to trigger it, in step with the repetitions, so it would be timed as
one plot's cost.

Run:

    .venv/bin/python benchmarks/study_plots.py [--repeat 9] [--seed 1]
    .venv/bin/python benchmarks/study_plots.py --against HEAD~1   # before/after, same run
    .venv/bin/python benchmarks/study_plots.py --save out/ --pngs out/  # keep series, PNGs
    .venv/bin/python benchmarks/study_plots.py --series out/tutorial.json  # a stored series

`--against REV` also times `core/study_plots.py` as of git revision REV,
rendering the same series alternately with the current one, so both see the
same load. `--pngs DIR` writes every plot of every series at 900x600 and
320x240 from each module, to look at.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core.study_plots  # noqa: E402
from core.plots import PlotSize  # noqa: E402
from core.presets import study_preset  # noqa: E402

Series = dict[str, Any]

STUDIES: dict[str, Mapping[str, Any]] = {
    "tutorial": study_preset("tutorial").study,
    "depths x activations": {
        "base": {},
        "axes": {
            "model.hidden_layers": [[5] * depth for depth in (2, 3, 4, 5)],
            "model.activation": ["sigmoid", "tanh", "relu"],
        },
    },
}
PNG_SIZES = ((900, 600, 100), (320, 240, 72))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed renders per plot (default 9)")
    parser.add_argument("--seed", type=int, default=1, help="the studies' seed (default 1)")
    parser.add_argument(
        "--series", action="append", type=Path, help="time this series JSON instead (repeatable)"
    )
    parser.add_argument(
        "--against", metavar="REV", help="also time core/study_plots.py as of git revision REV"
    )
    parser.add_argument("--save", type=Path, help="also write the series' JSON into this folder")
    parser.add_argument("--pngs", type=Path, help="also write every plot's PNG into this folder")
    args = parser.parse_args(argv)
    all_series = load_series(args.series) if args.series else run_studies(args.seed)
    gc.collect()
    gc.freeze()
    if args.save:
        save_series(all_series, args.save)
    modules = {"current": core.study_plots}
    if args.against:
        modules[args.against] = load_revision(args.against)
    if args.pngs:
        write_pngs(modules, all_series, args.pngs)
    size = f"{PlotSize.WIDTH}x{PlotSize.HEIGHT} at {PlotSize.DPI} dpi"
    for label, series in all_series.items():
        names = core.study_plots.available_study_plots(series)
        configs = len(series["configs"])
        print(f"\n{label}: {configs} configurations, {size}, ms (min of {args.repeat})")
        report(names, time_renders(modules, series, names, args.repeat))
    return 0


def run_studies(seed: int) -> dict[str, Series]:
    """The series of each study in `STUDIES`, its children trained by the engine here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.engine import run_experiment
    from core.studies import expand_study, parse_study

    all_series: dict[str, Series] = {}
    for label, body in STUDIES.items():
        base = {**body["base"], "seed": seed}
        plan = expand_study(parse_study({**body, "base": base}))
        started = time.perf_counter()
        results = [run_experiment(spec).result for spec in plan.children]
        configs = [config.to_json_dict() for config in plan.configs]
        all_series[label] = core.study_plots.study_series(configs, plan.seeds, results)
        elapsed = time.perf_counter() - started
        print(f"{label}: {len(results)} children trained in {elapsed:.1f} s", file=sys.stderr)
    return all_series


def load_series(paths: Sequence[Path]) -> dict[str, Series]:
    return {path.stem: json.loads(path.read_text()) for path in paths}


def save_series(all_series: dict[str, Series], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for label, series in all_series.items():
        (folder / f"{_file_name(label)}.json").write_text(json.dumps(series))


def write_pngs(modules: dict[str, ModuleType], all_series: dict[str, Series], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for label, series in all_series.items():
        for module_label, module in modules.items():
            for name in module.available_study_plots(series):
                for width, height, dpi in PNG_SIZES:
                    png = module.render_study_plot(
                        name, series, width=width, height=height, dpi=dpi
                    )
                    stem = f"{_file_name(label)}-{name}-{width}x{height}-{_file_name(module_label)}"
                    (folder / f"{stem}.png").write_bytes(png)


def _file_name(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label)


def load_revision(revision: str) -> ModuleType:
    """core/study_plots.py as of `revision`, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{revision}:core/study_plots.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="gradwatch-study-plots-"))
    path = folder / "study_plots_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("study_plots_at_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def time_renders(
    modules: dict[str, ModuleType], series: Series, names: list[str], repeat: int
) -> dict[str, dict[str, float]]:
    """Seconds per module and plot: the minimum of `repeat` renders, after one to warm up.

    The modules take turns within each repetition, so both see the same load.
    """
    best = {label: {name: float("inf") for name in names} for label in modules}
    for repetition in range(repeat + 1):
        for label, module in modules.items():
            for name in names:
                gc.collect()
                started = time.perf_counter()
                module.render_study_plot(name, series)
                elapsed = time.perf_counter() - started
                if repetition > 0:
                    best[label][name] = min(best[label][name], elapsed)
    return best


def report(names: list[str], timings: dict[str, dict[str, float]]) -> None:
    labels = list(timings)
    print(f"  {'plot':<15}" + "".join(f"{label:>12}" for label in labels))
    for name in names:
        print(f"  {name:<15}" + "".join(f"{timings[label][name] * 1000:12.1f}" for label in labels))
    totals = [sum(timings[label].values()) * 1000 for label in labels]
    print(f"  {'total':<15}" + "".join(f"{total:12.1f}" for total in totals))


if __name__ == "__main__":
    raise SystemExit(main())
