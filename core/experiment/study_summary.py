"""A study's outcome: its status, and one row per configuration over its seeds
(final loss and accuracy as mean and spread, a regression's baseline loss, verdicts),
as JSON or CSV.

Pure: `summarize` reads the children's finished records as `ChildOutcome`s; the
store (core.store.studies) stores what it returns when it seals the study.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.experiment.jobs import JobStatus
from core.experiment.study_axes import value_label


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    """What a study needs of one finished child: its status and its record's summary."""

    id: str
    status: JobStatus | None  # None: the child's record is gone (deleted or expired)
    summary: Mapping[str, Any] | None = None


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample S.D., min and max of the finite `values`, and how many there were."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "n": len(finite),
        "mean": statistics.fmean(finite),
        "std": statistics.stdev(finite) if len(finite) > 1 else None,
        "min": min(finite),
        "max": max(finite),
    }


def study_status(outcomes: Sequence[ChildOutcome]) -> JobStatus:
    """A finished study's status: cancelled if any child was, failed if any failed or
    vanished, succeeded when every child succeeded."""
    statuses = {outcome.status for outcome in outcomes}
    if JobStatus.CANCELLED in statuses:
        return JobStatus.CANCELLED
    if JobStatus.FAILED in statuses or None in statuses:
        return JobStatus.FAILED
    return JobStatus.SUCCEEDED


def summarize(
    configs: Sequence[Mapping[str, Any]], seeds: int, outcomes: Sequence[ChildOutcome]
) -> dict[str, Any]:
    """One row per configuration: axis values, final loss and accuracy over seeds, verdicts.

    `configs` are `StudyConfig.to_json_dict()`s; `outcomes` are in child order.
    """
    rows = []
    for config in configs:
        index = int(config["index"])
        mine = outcomes[index * seeds : (index + 1) * seeds]
        succeeded = [o for o in mine if o.status is JobStatus.SUCCEEDED and o.summary]
        verdicts: Counter[str] = Counter()
        for outcome in succeeded:
            verdicts.update(str(v) for v in (outcome.summary or {}).get("verdicts", []))
        counts = Counter("missing" if o.status is None else o.status.value for o in mine)
        rows.append(
            {
                "config": index,
                "label": config["label"],
                "values": config["values"],
                "seeds": len(mine),
                "succeeded": counts["succeeded"],
                "failed": counts["failed"] + counts["missing"],
                "cancelled": counts["cancelled"],
                "loss": spread([_number(o.summary, "loss") for o in succeeded]),
                "accuracy": spread([_number(o.summary, "accuracy") for o in succeeded]),
                # A regression's yardstick (no accuracy): the loss of predicting the mean.
                "baseline_loss": spread([_number(o.summary, "baseline_loss") for o in succeeded]),
                "diverged": sum(bool((o.summary or {}).get("diverged")) for o in succeeded),
                "verdicts": dict(sorted(verdicts.items())),
                "children": [o.id for o in mine],
            }
        )
    return {"rows": rows}


def _number(summary: Mapping[str, Any] | None, name: str) -> float:
    value = (summary or {}).get(name)
    return float(value) if isinstance(value, int | float) else math.nan


_STATS = ("mean", "std", "min", "max")
_METRICS = ("loss", "accuracy", "baseline_loss")


def summary_csv(summary: Mapping[str, Any], axes: Sequence[str]) -> str:
    """The summary's rows as CSV: one line per configuration, one column per axis."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metrics = [f"{metric}_{stat}" for metric in _METRICS for stat in _STATS]
    counts = ["seeds", "succeeded", "failed", "cancelled"]
    writer.writerow(["config", "label", *axes, *counts, *metrics, "diverged", "verdicts"])
    for row in summary["rows"]:
        values = [_csv_value(row["values"].get(path)) for path in axes]
        # Summaries sealed before the baseline was kept have none: empty cells.
        numbers = [
            _csv_value((row.get(metric) or {}).get(stat)) for metric in _METRICS for stat in _STATS
        ]
        verdicts = ";".join(f"{name}:{count}" for name, count in row["verdicts"].items())
        tally = [row[name] for name in counts]
        writer.writerow(
            [row["config"], row["label"], *values, *tally, *numbers, row["diverged"], verdicts]
        )
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool | int | str):
        return value_label(value) if isinstance(value, bool) else str(value)
    return value_label(value)
