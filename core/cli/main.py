"""The `gradwatch` command.

    gradwatch run [SPEC.json] --out DIR    train one experiment here, write its files
    gradwatch serve                        start the whole service on this machine
    gradwatch keys new [--owner NAME]      make an API key and its GRADWATCH_API_KEYS entry
    gradwatch submit SPEC.json --server URL [--wait] [--out DIR]
                                           queue one on a service (core.cli.remote), and
    gradwatch study | status | download    a study, a record, the files of a finished one
    gradwatch datasets upload FILE | list | show ID | delete ID
                                           your own data on a service (core.cli.datasets)

`run` takes the spec from a file (`-` for standard input; none means the
tutorial's default), trains it in this process with a progress bar, writes
result.json, every plot and (when raw capture is on) arrays.npz into DIR,
and prints the verdict. The worker calls the same engine.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.cli import datasets, keys, remote, serve
from core.cli.progress import ProgressBar, outcome
from core.experiment.spec import ExperimentSpec


def load_spec(path: str | None) -> ExperimentSpec:
    """The spec in `path` (`-` = standard input), or the default when None."""
    if path is None:
        return ExperimentSpec()
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return ExperimentSpec.model_validate_json(text or "{}")


def write_outputs(out: Path, result: dict[str, Any], arrays: bytes | None) -> list[Path]:
    """result.json, every available plot and arrays.npz into `out`; the paths written."""
    from core.experiment.result import dumps_result
    from core.plotting.catalog import available_plots, render_plot

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "result.json"]
    written[0].write_text(dumps_result(result))
    for name in available_plots(result):
        path = out / f"{name}.png"
        path.write_bytes(render_plot(name, result))
        written.append(path)
    if arrays is not None:
        written.append(out / "arrays.npz")
        written[-1].write_bytes(arrays)
    return written


def run_command(args: argparse.Namespace) -> int:
    try:
        spec = load_spec(args.spec)
    except (OSError, ValueError) as error:
        # ValidationError is a ValueError: it names each field and its limit.
        print(f"gradwatch: bad spec: {error}", file=sys.stderr)
        return 2
    if args.epochs is not None or args.seed is not None:
        overrides: dict[str, Any] = {}
        if args.seed is not None:
            overrides["seed"] = args.seed
        if args.epochs is not None:
            overrides["training"] = spec.training.model_dump() | {"epochs": args.epochs}
        try:
            spec = ExperimentSpec.model_validate(spec.model_dump() | overrides)
        except ValidationError as error:
            print(f"gradwatch: bad spec: {error}", file=sys.stderr)
            return 2

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.engine.run import run_experiment  # TensorFlow loads here, only for `run`

    hooks = [] if args.quiet else [ProgressBar(sys.stderr)]
    output = run_experiment(spec, hooks)
    written = write_outputs(Path(args.out), output.result, output.arrays)
    result = output.result
    after = result["metrics"]["after"]
    baseline = (result["metrics"].get("baseline") or {}).get("loss")
    print(f"seed {result['seed']}: {outcome(after['loss'], after['accuracy'], baseline)}")
    print(f"verdict: {', '.join(result['diagnosis']['verdicts'])}")
    ratio = result["diagnosis"]["evidence"]["gradient_flow"]["first_to_last_rms_ratio"]
    if ratio is not None:
        print(f"first-to-last layer RMS gradient ratio: {ratio:.3g}")
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradwatch", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train one experiment in this process")
    run.add_argument("spec", nargs="?", help="spec JSON file, - for stdin (default: the tutorial)")
    run.add_argument("--out", default="out", help="folder for result.json and plots (default: out)")
    run.add_argument("--epochs", type=int, help="override training.epochs")
    run.add_argument("--seed", type=int, help="override the seed")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=run_command)
    remote.register(commands)
    datasets.register(commands)
    serve.register(commands)
    keys.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
