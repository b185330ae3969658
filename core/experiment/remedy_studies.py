"""Proving prescriptions: one study of a run's own spec against each prescribed fix.

`plan_remedies` turns a finished run (its spec as run and its diagnosis) and
a `RemedyRequest` into an ordinary study (core/experiment/studies.py): the
run's spec unchanged as configuration 0, labelled `baseline`, then one
configuration per chosen fix, its merge patch applied to that spec. Every
configuration runs the same seeds, starting at the run's own, so the
baseline's first seed is the run again and each fix meets the same data and
the same starting draws as the baseline it is compared with.

`remedy_summary` says, per fix, what the study found: in how many seeds the
verdicts it was prescribed for cleared, the final loss and accuracy against
the baseline seed by seed (mean and spread of the differences), the gradient
ratio before and after, and any verdict the fix brought that the baseline did
not have. benchmarks/remedies.py reports the same numbers for the README.

Example:
    >>> plan = plan_remedies(spec, diagnosis, RemedyRequest(seeds=5), source={...})
    >>> [config.label for config in plan.configs]
    ['baseline', 'tanh', 'batch_norm', 'relu', 'residual', 'glorot_init']
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from core.experiment.fixes import FixId
from core.experiment.jobs import JobStatus
from core.experiment.merge_patch import merge_patch, patch_paths
from core.experiment.prescriptions import prescribe
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import (
    MAX_CHILDREN,
    MAX_SEEDS,
    StudyConfig,
    StudyError,
    StudyPlan,
    child_name,
    child_seed,
)
from core.experiment.study_summary import ChildOutcome, spread

BASELINE = "baseline"
DEFAULT_SEEDS = 3


class RemedyRequest(BaseModel):
    """What a client POSTs to prove fixes: `{}` is every prescribed fix over 3 seeds."""

    model_config = ConfigDict(extra="forbid")

    fixes: list[FixId] | None = Field(
        None,
        min_length=1,
        max_length=len(FixId),
        description="fixes to try, by name (see the run's `diagnosis.prescriptions`); "
        "omitted: every fix prescribed",
    )
    seeds: StrictInt = Field(
        DEFAULT_SEEDS, ge=1, le=MAX_SEEDS, description="runs per configuration"
    )


class NothingPrescribedError(ValueError):
    """The run's diagnosis prescribes no fix (it is healthy, or nothing applies to it)."""

    def __init__(self, verdicts: Sequence[str]) -> None:
        super().__init__(
            f"the run's verdicts ({', '.join(verdicts) or 'none'}) prescribe no fix to prove"
        )
        self.verdicts = list(verdicts)


def prescribed_fixes(prescriptions: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """fix -> {"patch", "verdicts"}: every fix prescribed, best-ranked first, with the
    verdicts it was prescribed for in the diagnosis' order."""
    ranked = sorted(
        (item["rank"], position, item)
        for position, items in enumerate(prescriptions.values())
        for item in items
    )
    fixes: dict[str, Any] = {
        item["fix"]: {"patch": item["patch"], "verdicts": []} for *_, item in ranked
    }
    for verdict, items in prescriptions.items():
        for item in items:
            fixes[item["fix"]]["verdicts"].append(verdict)
    return fixes


def plan_remedies(
    spec: ExperimentSpec,
    diagnosis: Mapping[str, Any],
    request: RemedyRequest,
    *,
    source: Mapping[str, Any],
) -> StudyPlan:
    """The study that proves `request.fixes` (or every prescribed fix) against `spec`.

    `source` names the run (`{"experiment": id}`, or `{"study": id, "config": i}`) in the
    stored request. Raises NothingPrescribedError, or StudyError naming `fixes[i]` (a fix
    not prescribed for this run, or named twice) or `seeds` (too many children).
    """
    offered = prescribed_fixes(prescribe(spec, diagnosis))
    if not offered:
        raise NothingPrescribedError(diagnosis.get("verdicts", []))
    chosen = _chosen(request, offered)
    children = (1 + len(chosen)) * request.seeds
    if children > MAX_CHILDREN:
        reason = (
            f"{1 + len(chosen)} configurations (the baseline and {len(chosen)} fixes) x "
            f"{request.seeds} seeds = {children} experiments exceed the limit of {MAX_CHILDREN}"
        )
        raise StudyError([{"field": "seeds", "reason": reason}])
    base = spec.model_dump(mode="json", exclude={"seed", "name"})
    name = f"remedies for {spec.name}" if spec.name else "remedies"
    configs = [StudyConfig(0, BASELINE, {})] + [
        StudyConfig(index, fix_id, dict(patch_paths(offered[fix_id]["patch"])))
        for index, fix_id in enumerate(chosen, start=1)
    ]
    patches = [{}] + [offered[fix_id]["patch"] for fix_id in chosen]
    specs = [
        ExperimentSpec.model_validate(
            merge_patch(base, patch)
            | {
                "seed": child_seed(spec.seed, number),
                "name": child_name(name, config.label, number, request.seeds),
            }
        )
        for config, patch in zip(configs, patches, strict=True)
        for number in range(request.seeds)
    ]
    stored = {
        "name": name,
        "preset": None,
        "base": base,
        "axes": {},
        "seeds": request.seeds,
        "seed": spec.seed,
        "remedies": {
            "source": dict(source),
            "fixes": {fix_id: offered[fix_id] for fix_id in chosen},
        },
    }
    return StudyPlan(stored, configs, request.seeds, specs)


def _chosen(request: RemedyRequest, offered: Mapping[str, Any]) -> list[str]:
    if request.fixes is None:
        return list(offered)
    errors = []
    for index, fix_id in enumerate(request.fixes):
        if fix_id.value not in offered:
            reason = f"{fix_id.value} is not prescribed for this run; choose from " + ", ".join(
                offered
            )
            errors.append({"field": f"fixes[{index}]", "reason": reason})
        elif fix_id in request.fixes[:index]:
            errors.append({"field": f"fixes[{index}]", "reason": f"{fix_id.value} is listed twice"})
    if errors:
        raise StudyError(errors)
    return [fix_id.value for fix_id in request.fixes]


# ------------------------------------------------------------------------- summary


def remedy_summary(
    configs: Sequence[Mapping[str, Any]],
    seeds: int,
    outcomes: Sequence[ChildOutcome],
    remedies: Mapping[str, Any],
) -> dict[str, Any]:
    """What each fix did against the baseline, seed by seed (see the module docstring).

    `configs` are the study's (configuration 0 the baseline), `outcomes` its children
    in order, `remedies` the stored request's `remedies` section.
    """
    baseline = [_finished(o) for o in outcomes[:seeds]]
    fixes = []
    for config in configs[1:]:
        index, fix_id = int(config["index"]), str(config["label"])
        mine = [_finished(o) for o in outcomes[index * seeds : (index + 1) * seeds]]
        targets = remedies["fixes"][fix_id]["verdicts"]
        fixes.append(_fix_row(index, fix_id, targets, baseline, mine))
    return {
        "baseline": {
            "config": 0,
            "seeds": sum(s is not None for s in baseline),
            "verdicts": dict(
                sorted(Counter(v for s in baseline if s for v in s["verdicts"]).items())
            ),
            "gradient_ratio": _median([s.get("gradient_ratio") for s in baseline if s]),
        },
        "fixes": fixes,
    }


def _tally(verdict_lists: Iterable[Sequence[str]]) -> dict[str, int]:
    """verdict -> how many of the runs got it."""
    counts = Counter(verdict for verdicts in verdict_lists for verdict in verdicts)
    return dict(sorted(counts.items()))


def _finished(outcome: ChildOutcome) -> Mapping[str, Any] | None:
    """A child's summary when it succeeded, else None."""
    if outcome.status is JobStatus.SUCCEEDED and outcome.summary:
        return outcome.summary
    return None


def _fix_row(
    index: int,
    fix_id: str,
    targets: Sequence[str],
    baseline: Sequence[Mapping[str, Any] | None],
    mine: Sequence[Mapping[str, Any] | None],
) -> dict[str, Any]:
    pairs = [(b, f) for b, f in zip(baseline, mine, strict=True) if b is not None and f is not None]
    new = _tally(
        sorted(set(after["verdicts"]) - set(before["verdicts"]) - {"healthy"})
        for before, after in pairs
    )
    return {
        "fix": fix_id,
        "config": index,
        "seeds": len(pairs),
        "verdicts": [_cleared(verdict, pairs) for verdict in targets],
        "new_verdicts": new,
        "accuracy_change": _change("accuracy", pairs),
        "loss_change": _change("loss", pairs),
        "gradient_ratio": {
            "before": _median([b.get("gradient_ratio") for b, _ in pairs]),
            "after": _median([f.get("gradient_ratio") for _, f in pairs]),
        },
    }


def _cleared(verdict: str, pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict:
    had = [after for before, after in pairs if verdict in before["verdicts"]]
    return {
        "verdict": verdict,
        "baseline": len(had),  # seeds whose baseline run had it
        "cleared": sum(verdict not in after["verdicts"] for after in had),
        "after": sum(verdict in after["verdicts"] for _, after in pairs),
    }


def _change(
    metric: str, pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> dict[str, float | int | None]:
    """The fix's final `metric` minus the baseline's, seed by seed, as a spread."""
    return spread(
        [
            after[metric] - before[metric]
            for before, after in pairs
            if isinstance(before.get(metric), int | float)
            and isinstance(after.get(metric), int | float)
        ]
    )


def _median(values: Sequence[Any]) -> float | None:
    finite = [float(v) for v in values if isinstance(v, int | float)]
    return statistics.median(finite) if finite else None
