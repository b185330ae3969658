"""Train a study preset's children here, one after another, and print what they show.

    python benchmarks/network_studies.py recurrent-cells [--seeds 3] [--set PATH=JSON ...]

The README's tables for the layer-list studies come from this script: per
configuration, over its seeds, the final accuracy (or, for a regression, the
loss beside its baseline), the verdicts, and the medians behind them (the
first-to-last RMS gradient ratio through depth, ||dL/dh_1|| / ||dL/dh_T||
through time).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from collections import Counter
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.engine.run import run_experiment
from core.experiment.studies import StudyRequest, expand_study, resolve_preset


def describe(values: list[float | None]) -> str:
    finite = [v for v in values if v is not None]
    if not finite:
        return "-"
    return f"{statistics.fmean(finite):.3f} ({min(finite):.3f}-{max(finite):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("preset")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--set", action="append", default=[], help="base spec PATH=JSON, e.g. training.epochs=50"
    )
    args = parser.parse_args()
    study = resolve_preset(StudyRequest(preset=args.preset, seeds=args.seeds))
    base = copy.deepcopy(study.base)
    for assignment in args.set:
        path, _, value = assignment.partition("=")
        *sections, leaf = path.split(".")
        node = base
        for part in sections:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(value)
    plan = expand_study(study.model_copy(update={"base": base, "preset": None}))
    results: dict[int, list[dict[str, Any]]] = {}
    for index, spec in enumerate(plan.children):
        spec = spec.model_copy(update={"seed": args.seed + index % plan.seeds})
        started = time.perf_counter()
        result = run_experiment(spec).result
        config = plan.configs[plan.config_of(index)]
        print(
            f"  {config.label} seed {spec.seed}: {time.perf_counter() - started:.1f} s", flush=True
        )
        results.setdefault(plan.config_of(index), []).append(result)
    print(f"\n{args.preset}, {plan.seeds} seeds")
    print("| configuration | accuracy / loss (baseline) | verdicts | depth ratio | time ratio |")
    print("|---|---|---|---|---|")
    for config in plan.configs:
        runs = results[config.index]
        after = [r["metrics"]["after"] for r in runs]
        if runs[0]["dataset"].get("task") == "regression":
            baseline = describe([r["metrics"]["baseline"]["loss"] for r in runs])
            headline = f"loss {describe([a['loss'] for a in after])} (baseline {baseline})"
        else:
            headline = f"accuracy {describe([a['accuracy'] for a in after])}"
        verdicts = Counter(v for r in runs for v in r["diagnosis"]["verdicts"])
        depth = [
            r["diagnosis"]["evidence"]["gradient_flow"]["first_to_last_rms_ratio"] for r in runs
        ]
        time_ratios = [
            ratio
            for r in runs
            for ratio in (r["diagnosis"]["evidence"].get("through_time") or {})
            .get("first_to_last_ratio", {})
            .values()
        ]
        print(
            f"| {config.label} | {headline} | "
            f"{', '.join(f'{k} {n}' for k, n in sorted(verdicts.items()))} | "
            f"{describe(depth)} | {describe(time_ratios) if time_ratios else '-'} |"
        )


if __name__ == "__main__":
    main()
