"""Which prescribed fixes work: each example's baseline against every fix, over the same seeds.

    python benchmarks/remedies.py [--seeds 5] [--first-seed 1] [--epochs 100] [--emit]

Three examples, each the tutorial's spec (`{}`) with one change that brings
one verdict about: `{}` itself (vanishing), relu with N(0, 10) weights
(exploding) and relu under Adam at a learning rate of 0.1 (dead units). For
each, the study a client gets from `POST /v1/experiments/{id}/remedies` is
planned with the service's own code (core/experiment/remedy_studies.py:
every fix the verdict prescribes on that network, the baseline and each fix
on the same seeds, data and starting draws), trained with the engine (runs
that share a graph side by side, as a worker trains a study's children) and
summarized as the study's summary is. The table shows, per fix, in how many
seeds the verdict cleared, verdicts it brought, the final accuracy against
the baseline's seed by seed, and the first-to-last gradient ratio.

`--emit` also writes core/experiment/measured_remedies.json, the evidence
the prescriptions are ranked by.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.engine.run import RunOutput, run_ensemble, run_experiment
from core.experiment.fixes import FixId
from core.experiment.grouping import ensemble_groups
from core.experiment.jobs import JobStatus, Summary
from core.experiment.measured_remedies import TABLE, Measurement, write_table
from core.experiment.merge_patch import merge_patch
from core.experiment.prescriptions import support_of
from core.experiment.remedy_studies import RemedyRequest, plan_remedies, remedy_summary
from core.experiment.sizing import layer_widths
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import StudyPlan
from core.experiment.study_summary import ChildOutcome, summarize


@dataclass(frozen=True)
class Example:
    """A network that shows one verdict: the tutorial's spec with `patch` applied."""

    verdict: str
    network: str
    patch: Mapping[str, Any]


EXAMPLES = (
    Example("vanishing", "the tutorial's network: sigmoid, N(0, 1), RMSprop", {}),
    Example(
        "exploding",
        "the tutorial's network with relu and N(0, 10) weights",
        {"model": {"activation": "relu", "initializer": {"stddev": 10.0}}},
    ),
    Example(
        "dead_units",
        "the tutorial's network with relu, Adam at a learning rate of 0.1",
        {
            "model": {"activation": "relu"},
            "training": {"optimizer": {"kind": "adam", "learning_rate": 0.1}},
        },
    ),
)


def example_spec(example: Example, *, seed: int, epochs: int) -> ExperimentSpec:
    spec = merge_patch({"training": {"epochs": epochs}}, example.patch)
    return ExperimentSpec.model_validate(spec | {"seed": seed, "name": example.verdict})


def plan(example: Example, *, seeds: int, first_seed: int, epochs: int) -> StudyPlan:
    """The study the service would run to prove every fix `example.verdict` prescribes."""
    spec = example_spec(example, seed=first_seed, epochs=epochs)
    diagnosis = {"verdicts": [example.verdict], "evidence": {}}
    return plan_remedies(spec, diagnosis, RemedyRequest(seeds=seeds), source={"benchmark": 1})


def train(children: Sequence[ExperimentSpec]) -> list[RunOutput]:
    """Every child, those that share a graph side by side (as a worker trains a study)."""
    outputs: list[RunOutput | None] = [None] * len(children)
    for group in ensemble_groups(children):
        if len(group) == 1:
            outputs[group[0]] = run_experiment(children[group[0]])
            continue
        members = run_ensemble([children[i] for i in group], [[] for _ in group])
        for index, output in zip(group, members, strict=True):
            assert isinstance(output, RunOutput)
            outputs[index] = output
    return [output for output in outputs if output is not None]


def outcomes(outputs: Sequence[RunOutput]) -> list[ChildOutcome]:
    return [
        ChildOutcome(str(i), JobStatus.SUCCEEDED, Summary.from_result(o.result).to_json_dict())
        for i, o in enumerate(outputs)
    ]


def measurements(example: Example, summary: Mapping[str, Any], seeds: int) -> list[Measurement]:
    activation = example_spec(example, seed=1, epochs=1).model.activations[0]
    found = []
    for row in summary["fixes"]:
        (verdict,) = row["verdicts"]
        change = row["accuracy_change"]
        found.append(
            Measurement(
                verdict=example.verdict,
                activation=activation,
                fix=FixId(row["fix"]),
                network=example.network,
                seeds=seeds,
                had=verdict["baseline"],
                cleared=verdict["cleared"],
                accuracy_change=_round(change["mean"]),
                accuracy_change_std=_round(change["std"]),
                ratio_before=_round(row["gradient_ratio"]["before"]),
                ratio_after=_round(row["gradient_ratio"]["after"]),
                new_verdicts=row["new_verdicts"],
            )
        )
    return found


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


def _spread(stats: Mapping[str, Any]) -> str:
    if stats["mean"] is None:
        return "-"
    std = stats["std"]
    return f"{stats['mean']:+.3f} ± {std:.3f}" if std is not None else f"{stats['mean']:+.3f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def report(
    example: Example, study: StudyPlan, outputs: Sequence[RunOutput], seconds: float
) -> list[Measurement]:
    done = outcomes(outputs)
    configs = [config.to_json_dict() for config in study.configs]
    rows = summarize(configs, study.seeds, done)["rows"]
    summary = remedy_summary(configs, study.seeds, done, study.request["remedies"])
    found = measurements(example, summary, study.seeds)
    base = rows[0]
    widths = "-".join(map(str, layer_widths(study.children[0])))
    print(
        f"\n### {example.verdict}: {example.network} ({widths}), seeds "
        f"{study.children[0].seed}..{study.children[study.seeds - 1].seed}, {seconds:.0f} s"
    )
    print(
        f"baseline: {example.verdict} in {summary['fixes'][0]['verdicts'][0]['baseline']} of "
        f"{study.seeds} seeds, accuracy {base['accuracy']['mean']:.3f} "
        f"(S.D. {base['accuracy']['std'] or 0:.3f}), gradient ratio "
        f"{_ratio(summary['baseline']['gradient_ratio'])}"
    )
    print(
        "| rank | fix | cleared | new verdicts | accuracy | change vs baseline | ratio after "
        "| support |"
    )
    print("|---:|---|---:|---|---:|---:|---:|---|")
    for rank, (row, measured) in enumerate(zip(summary["fixes"], found, strict=True), start=1):
        verdict = row["verdicts"][0]
        accuracy = rows[row["config"]]["accuracy"]["mean"]
        new = ", ".join(f"{k} {v}" for k, v in row["new_verdicts"].items()) or "-"
        print(
            f"| {rank} | {row['fix']} | {verdict['cleared']}/{verdict['baseline']} | {new} | "
            f"{accuracy:.3f} | {_spread(row['accuracy_change'])} | "
            f"{_ratio(row['gradient_ratio']['after'])} | {support_of(measured).value} |"
        )
    return found


def emit(found: Sequence[Measurement], argv: Sequence[str]) -> None:
    """Write the measurements to the table the prescriptions are ranked by."""
    command = " ".join(["python", "benchmarks/remedies.py", *argv])
    TABLE.write_text(write_table(found, command=command), encoding="utf-8")
    print(f"\nwrote {TABLE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument(
        "--emit", action="store_true", help="write the table the prescriptions are ranked by"
    )
    parser.add_argument("--only", choices=[e.verdict for e in EXAMPLES], action="append")
    args = parser.parse_args()
    if args.emit and args.only:
        parser.error("--emit writes the whole table: leave out --only")
    found: list[Measurement] = []
    examples = [e for e in EXAMPLES if not args.only or e.verdict in args.only]
    for example in examples:
        study = plan(example, seeds=args.seeds, first_seed=args.first_seed, epochs=args.epochs)
        started = time.perf_counter()
        outputs = train(study.children)
        found += report(example, study, outputs, time.perf_counter() - started)
    if args.emit:
        emit(found, sys.argv[1:])


if __name__ == "__main__":
    main()
