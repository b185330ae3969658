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

`--against REV` also times the plotting package (`core/plotting/`) as of git revision REV,
rendering the same series alternately with the current one, so both see the
same load. `--pngs DIR` writes every plot of every series at 900x600 and
320x240 from each module, to look at.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core.plotting.catalog  # noqa: E402
from benchmarks.plots import load_revision, report, time_renders  # noqa: E402
from core.experiment.study_presets import study_preset  # noqa: E402
from core.plotting.kinds import PlotSize  # noqa: E402
from core.plotting.study.series import study_series  # noqa: E402

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
        "--against",
        metavar="REV",
        help="also time core/plotting/ as of git revision REV",
    )
    parser.add_argument("--save", type=Path, help="also write the series' JSON into this folder")
    parser.add_argument("--pngs", type=Path, help="also write every plot's PNG into this folder")
    args = parser.parse_args(argv)
    all_series = load_series(args.series) if args.series else run_studies(args.seed)
    gc.collect()
    gc.freeze()
    if args.save:
        save_series(all_series, args.save)
    modules: dict[str, ModuleType] = {"current": core.plotting.catalog}
    if args.against:
        modules[args.against] = load_revision(args.against, "study_plots")
    if args.pngs:
        write_pngs(modules, all_series, args.pngs)
    size = f"{PlotSize.WIDTH}x{PlotSize.HEIGHT} at {PlotSize.DPI} dpi"
    for label, series in all_series.items():
        names = core.plotting.catalog.available_study_plots(series)
        configs = len(series["configs"])
        print(f"\n{label}: {configs} configurations, {size}, ms (min of {args.repeat})")
        report(names, time_renders(modules, series, names, args.repeat, render="render_study_plot"))
    return 0


def run_studies(seed: int) -> dict[str, Series]:
    """The series of each study in `STUDIES`, its children trained by the engine here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.engine.run import run_experiment
    from core.experiment.studies import expand_study, parse_study

    all_series: dict[str, Series] = {}
    for label, body in STUDIES.items():
        base = {**body["base"], "seed": seed}
        plan = expand_study(parse_study({**body, "base": base}))
        started = time.perf_counter()
        results = [run_experiment(spec).result for spec in plan.children]
        configs = [config.to_json_dict() for config in plan.configs]
        all_series[label] = study_series(configs, plan.seeds, results)
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


if __name__ == "__main__":
    raise SystemExit(main())
