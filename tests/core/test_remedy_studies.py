"""Remedy studies: the run's spec against each fix on the same seeds, and what each fix did."""

from __future__ import annotations

from typing import Any

import pytest

from core.experiment.jobs import JobStatus, Summary
from core.experiment.merge_patch import merge_patch
from core.experiment.prescriptions import prescribe
from core.experiment.remedy_studies import (
    BASELINE,
    NothingPrescribedError,
    RemedyRequest,
    plan_remedies,
    prescribed_fixes,
    remedy_summary,
)
from core.experiment.spec import ExperimentSpec
from core.experiment.studies import MAX_CHILDREN, StudyError
from core.experiment.study_summary import ChildOutcome
from tests.core.test_prescriptions import diagnosis

RUN = ExperimentSpec.model_validate({"seed": 41, "name": "mine", "training": {"epochs": 7}})
VANISHING = diagnosis("vanishing")
SOURCE = {"experiment": "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"}


def test_every_prescribed_fix_over_three_seeds_by_default() -> None:
    plan = plan_remedies(RUN, VANISHING, RemedyRequest(), source=SOURCE)
    prescribed = [item["fix"] for item in prescribe(RUN, VANISHING)["vanishing"]]
    assert [config.label for config in plan.configs] == [BASELINE, *prescribed]
    assert plan.seeds == 3
    assert len(plan.children) == 3 * (1 + len(prescribed))
    assert plan.request["remedies"]["source"] == SOURCE
    assert plan.request["axes"] == {}


def test_the_baseline_is_the_run_and_each_fix_its_patch_on_the_same_seeds() -> None:
    plan = plan_remedies(
        RUN, VANISHING, RemedyRequest(fixes=["relu", "batch_norm"], seeds=2), source=SOURCE
    )
    assert [config.label for config in plan.configs] == [BASELINE, "relu", "batch_norm"]
    assert [child.seed for child in plan.children] == [41, 42] * 3
    run = RUN.model_dump(mode="json", exclude={"name"})
    assert plan.children[0].model_dump(mode="json", exclude={"name"}) == run
    for config, first in zip(plan.configs[1:], (2, 4), strict=True):
        patch = plan.request["remedies"]["fixes"][config.label]["patch"]
        expected = merge_patch(run, patch)
        assert plan.children[first].model_dump(mode="json", exclude={"name"}) == expected
    assert plan.configs[1].values == {"model.activation": "relu"}
    assert plan.children[3].name == "remedies for mine: relu, seed 2/2"


def test_fixes_must_be_prescribed_for_the_run_and_named_once() -> None:
    with pytest.raises(StudyError) as refused:
        plan_remedies(
            RUN, VANISHING, RemedyRequest(fixes=["tanh", "leaky_relu", "tanh"]), source=SOURCE
        )
    fields = {error["field"]: error["reason"] for error in refused.value.errors}
    assert set(fields) == {"fixes[1]", "fixes[2]"}
    assert "not prescribed for this run" in fields["fixes[1]"]
    assert "tanh" in fields["fixes[1]"]  # it lists what is
    assert "twice" in fields["fixes[2]"]


def test_a_run_that_prescribes_nothing_is_refused() -> None:
    with pytest.raises(NothingPrescribedError):
        plan_remedies(RUN, diagnosis("healthy"), RemedyRequest(), source=SOURCE)


def test_the_study_stays_within_the_child_limit() -> None:
    with pytest.raises(StudyError) as refused:
        plan_remedies(RUN, VANISHING, RemedyRequest(seeds=16), source=SOURCE)
    assert refused.value.errors[0]["field"] == "seeds"
    assert str(MAX_CHILDREN) in refused.value.errors[0]["reason"]


def test_a_fix_prescribed_for_two_verdicts_is_tried_once_for_both() -> None:
    both = diagnosis("vanishing", "saturated", saturated={"hidden_1": 0.9})
    fixes = prescribed_fixes(prescribe(RUN, both))
    assert fixes["batch_norm"]["verdicts"] == ["vanishing", "saturated"]
    plan = plan_remedies(RUN, both, RemedyRequest(seeds=1), source=SOURCE)
    labels = [config.label for config in plan.configs]
    assert len(labels) == len(set(labels)) == 1 + len(fixes)


# ------------------------------------------------------------------------- summary


def outcome(
    accuracy: float,
    verdicts: tuple[str, ...],
    ratio: float,
    status: JobStatus = JobStatus.SUCCEEDED,
) -> ChildOutcome:
    summary = Summary(1 - accuracy, accuracy, verdicts, gradient_ratio=ratio)
    return ChildOutcome("id", status, summary.to_json_dict())


def summarized(rows: list[list[ChildOutcome]]) -> dict[str, Any]:
    plan = plan_remedies(
        RUN, VANISHING, RemedyRequest(fixes=["tanh", "relu"], seeds=3), source=SOURCE
    )
    configs = [config.to_json_dict() for config in plan.configs]
    children = [child for row in rows for child in row]
    return remedy_summary(configs, 3, children, plan.request["remedies"])


def test_the_summary_says_what_each_fix_did_seed_by_seed() -> None:
    baseline = [
        outcome(0.6, ("vanishing",), 0.01),
        outcome(0.7, ("vanishing",), 0.02),
        outcome(0.8, ("healthy",), 0.2),
    ]
    tanh = [
        outcome(0.9, ("healthy",), 10.0),
        outcome(1.0, ("healthy",), 12.0),
        outcome(0.9, ("healthy",), 8.0),
    ]
    relu = [
        outcome(0.9, ("dead_units",), 5.0),
        outcome(0.7, ("vanishing",), 0.03),
        outcome(0.5, ("vanishing", "dead_units"), 0.05),
    ]
    summary = summarized([baseline, tanh, relu])
    assert summary["baseline"] == {
        "config": 0,
        "seeds": 3,
        "verdicts": {"healthy": 1, "vanishing": 2},
        "gradient_ratio": 0.02,
    }
    first, second = summary["fixes"]
    assert first["fix"] == "tanh" and first["config"] == 1
    assert first["verdicts"] == [{"verdict": "vanishing", "baseline": 2, "cleared": 2, "after": 0}]
    assert first["accuracy_change"]["mean"] == pytest.approx(0.7 / 3)
    assert first["loss_change"]["mean"] == pytest.approx(-first["accuracy_change"]["mean"])
    assert first["gradient_ratio"] == {"before": 0.02, "after": 10.0}
    assert first["new_verdicts"] == {}
    assert second["verdicts"] == [{"verdict": "vanishing", "baseline": 2, "cleared": 1, "after": 2}]
    assert second["new_verdicts"] == {"dead_units": 2, "vanishing": 1}
    assert second["accuracy_change"]["min"] == pytest.approx(-0.3)


def test_a_seed_that_failed_on_either_side_is_left_out() -> None:
    baseline = [
        outcome(0.6, ("vanishing",), 0.01),
        outcome(0.7, ("vanishing",), 0.02),
        outcome(0.7, ("vanishing",), 0.02, JobStatus.FAILED),
    ]
    tanh = [
        outcome(0.9, ("healthy",), 10.0),
        outcome(0.7, ("healthy",), 1.0, JobStatus.CANCELLED),
        outcome(0.9, ("healthy",), 8.0),
    ]
    relu = [outcome(0.9, ("healthy",), 5.0)] * 3
    first, second = summarized([baseline, tanh, relu])["fixes"]
    assert first["seeds"] == 1 and first["accuracy_change"]["n"] == 1
    assert second["seeds"] == 2
