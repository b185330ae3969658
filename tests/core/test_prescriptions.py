"""Prescriptions: which fixes each verdict calls for, in which order, in whose numbers."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from core.experiment.diagnosis import THRESHOLDS
from core.experiment.explanations import EXPLANATIONS, REFERENCES, explain, explanation
from core.experiment.fixes import FIXES, KERAS_LEARNING_RATES, FixId, fix
from core.experiment.measured_remedies import (
    MEASURED,
    TABLE,
    Measurement,
    read_table,
    write_table,
)
from core.experiment.merge_patch import merge_patch, patch_paths
from core.experiment.prescriptions import (
    FINDINGS,
    RANKINGS,
    SUPPORT_ORDER,
    Support,
    advise,
    measurement_for,
    prescribe,
    support_of,
)
from core.experiment.presets import BARS, RECALL, cell, conv_stack, layered_spec
from core.experiment.spec import Activation, ExperimentSpec, OptimizerKind

TUTORIAL = ExperimentSpec(seed=1)


def diagnosis(*verdicts: str, ratio: float | None = 1 / 860, **evidence: Any) -> dict[str, Any]:
    """A diagnosis as core.experiment.diagnosis gives it, with the evidence the words need."""
    flow = {"first_to_last_rms_ratio": ratio, "max_grad_norm": 3.2e4, "median_rms_grad": {}}
    return {
        "verdicts": list(verdicts),
        "evidence": {"gradient_flow": flow, "not_judged": {}, **evidence},
        "thresholds": THRESHOLDS,
    }


def spec_with(**model: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"seed": 1, "model": model})


def layered(dataset: dict[str, Any], layers: list[dict[str, Any]]) -> ExperimentSpec:
    return ExperimentSpec.model_validate(layered_spec("net", dataset, layers, 5) | {"seed": 1})


def conv_list(activation: str, depth: int = 4) -> ExperimentSpec:
    return layered(BARS, conv_stack(depth, activation))


SIMPLE_RNN = layered(RECALL | {"sequence_length": 10}, [cell("SimpleRNN")])


def fixes_of(prescriptions: dict[str, list[dict[str, Any]]], verdict: str) -> list[str]:
    return [item["fix"] for item in prescriptions[verdict]]


# ------------------------------------------------------------------ what, in which order


def test_a_healthy_run_prescribes_nothing() -> None:
    assert prescribe(TUTORIAL, diagnosis("healthy", ratio=2.0)) == {}
    assert advise(TUTORIAL, diagnosis("healthy"))["prescriptions"] == {}


def test_the_tutorials_vanishing_gradients_rank_by_what_was_measured_on_it() -> None:
    ranked = prescribe(TUTORIAL, diagnosis("vanishing"))["vanishing"]
    assert [item["fix"] for item in ranked] == [
        "tanh",
        "batch_norm",
        "relu",
        "residual",
        "glorot_init",
    ]
    assert [item["rank"] for item in ranked] == [1, 2, 3, 4, 5]
    assert [item["support"] for item in ranked] == [
        "helps",
        "helps",
        "helps",
        "partly",
        "does_not_help",
    ]
    # The tutorial's own suggestion, measured not to help on its network, says so.
    glorot = ranked[-1]["measured"]
    assert glorot["cleared"] == 0 and glorot["accuracy_change"]["mean"] < 0


def test_a_fix_that_did_not_help_ranks_below_one_never_tried() -> None:
    # A tanh network is not the measured sigmoid one: every fix is untested, in table order.
    ranked = prescribe(spec_with(activation="tanh"), diagnosis("vanishing"))["vanishing"]
    assert {item["support"] for item in ranked} == {"untested"}
    assert [item["fix"] for item in ranked] == ["batch_norm", "relu", "residual", "glorot_init"]


def test_a_regression_is_not_rated_by_measurements_on_a_classification() -> None:
    # The fixes were measured on the tutorial's sigmoid MLP, which classifies the moons:
    # the same MLP fitting the adding problem gets the table's order, every fix untested.
    adding = {"kind": "adding", "n_samples": 100, "sequence_length": 5}
    regression = ExperimentSpec.model_validate({"seed": 1, "dataset": adding})
    ranked = prescribe(regression, diagnosis("vanishing"))["vanishing"]
    assert {item["support"] for item in ranked} == {"untested"}
    assert all(item["measured"] is None for item in ranked)
    fixes = [item["fix"] for item in ranked]
    assert fixes == [remedy.fix for remedy in RANKINGS["vanishing"] if remedy.fix in fixes]


def test_ranks_follow_support_then_the_tables_order() -> None:
    for verdict, activation in itertools.product(RANKINGS, Activation):
        spec = spec_with(activation=activation.value)
        ranked = prescribe(spec, diagnosis(verdict)).get(verdict, [])
        keys = [SUPPORT_ORDER.index(Support(item["support"])) for item in ranked]
        assert keys == sorted(keys), (verdict, activation)
        table = [remedy.fix.value for remedy in RANKINGS[verdict]]
        for tier in set(keys):
            same = [item["fix"] for item, key in zip(ranked, keys, strict=True) if key == tier]
            assert same == [f for f in table if f in same], (verdict, activation)


@pytest.mark.parametrize(
    ("verdict", "spec", "expected"),
    [
        ("exploding", spec_with(activation="relu"), ["he_init", "lower_learning_rate"]),
        ("exploding", spec_with(activation="tanh"), ["glorot_init", "lower_learning_rate"]),
        ("dead_units", spec_with(activation="relu"), ["leaky_relu", "elu"]),
        ("saturated", TUTORIAL, ["batch_norm", "glorot_init"]),
        ("diverged", TUTORIAL, ["lower_learning_rate", "clip_gradients"]),
    ],
)
def test_every_verdict_prescribes_the_textbook_fixes(
    verdict: str, spec: ExperimentSpec, expected: list[str]
) -> None:
    found = fixes_of(prescribe(spec, diagnosis(verdict)), verdict)
    assert set(expected) <= set(found)


def test_each_verdict_of_a_run_gets_its_own_list() -> None:
    relu = spec_with(activation="relu", initializer={"stddev": 10.0})
    found = prescribe(relu, diagnosis("exploding", "dead_units", dead_units={"hidden_2": 0.8}))
    assert list(found) == ["exploding", "dead_units"]


def test_a_fix_the_run_already_has_is_not_prescribed() -> None:
    found = prescribe(
        spec_with(activation="relu", batch_norm=True, residual=True), diagnosis("vanishing")
    )
    assert not {"relu", "batch_norm", "residual", "tanh"} & set(fixes_of(found, "vanishing"))
    clipped = ExperimentSpec.model_validate({"seed": 1, "training": {"clipnorm": 0.5}})
    assert "clip_gradients" not in fixes_of(prescribe(clipped, diagnosis("diverged")), "diverged")


def test_residual_connections_need_two_layers_of_one_width() -> None:
    found = prescribe(spec_with(hidden_layers=[5, 8, 5]), diagnosis("vanishing"))
    assert "residual" not in fixes_of(found, "vanishing")


def test_a_fix_whose_spec_would_break_a_limit_is_left_out() -> None:
    # 999,731 parameters; batch normalization adds 4 per hidden unit, past 1,000,000.
    wide = spec_with(hidden_layers=[512, 512, 512, 512, 409])
    assert "batch_norm" not in fixes_of(prescribe(wide, diagnosis("vanishing")), "vanishing")


# ---------------------------------------------------------------------------- words


def test_the_rationale_cites_the_runs_own_numbers() -> None:
    item = prescribe(TUTORIAL, diagnosis("vanishing", ratio=1 / 860))["vanishing"][0]
    assert item["rationale"] == (
        "The first hidden layer's gradient is 1/860 of the output layer's: sigmoid's slope is "
        "at most 1/4, so 4 sigmoid layers can shrink it up to 4^4 = 256 times; tanh's slope is "
        "1 at zero, four times sigmoid's steepest, and its outputs are centred on zero."
    )
    relu = spec_with(activation="relu", initializer={"stddev": 10.0})
    exploding = prescribe(relu, diagnosis("exploding"))["exploding"][0]
    assert "reached 32,000" in exploding["rationale"]
    assert "N(0, 10) weights" in exploding["rationale"]
    dead = prescribe(relu, diagnosis("dead_units", dead_units={"hidden_1": 0.2, "hidden_3": 0.8}))
    assert dead["dead_units"][0]["rationale"].startswith("80% of hidden_3's units")


def test_what_to_expect_of_a_regression_s_fix_is_its_loss_not_an_accuracy() -> None:
    adding = {"kind": "adding", "n_samples": 100, "sequence_length": 5}
    sigmoid = {"hidden_layers": [8, 8], "activation": "sigmoid"}
    regression = ExperimentSpec.model_validate({"seed": 1, "dataset": adding, "model": sigmoid})
    for spec, learns in [
        (regression, "the loss falls well under its baseline"),
        (spec_with(**sigmoid), "accuracy rises"),
    ]:
        expected = [
            item["expected"] for item in prescribe(spec, diagnosis("vanishing"))["vanishing"]
        ]
        assert sum(learns in text for text in expected) >= 2, expected
        assert all("accuracy" not in text for text in expected) == spec.dataset.regression


def test_every_line_of_every_ranking_reads_as_a_sentence_for_every_network() -> None:
    evidence = {
        "dead_units": {"hidden_1": 0.6},
        "saturated": {"hidden_2": 0.7},
        "diverged": {"first_non_finite_epoch": 3, "largest_finite_gradient": 5e6},
    }
    through = {"exploding_through_time": 320.0}  # else 1/250
    networks = [spec_with(activation=activation.value) for activation in Activation]
    networks += [SIMPLE_RNN, conv_list("sigmoid"), conv_list("relu")]
    seen = set()
    for spec, verdict in itertools.product(networks, RANKINGS):
        ratios = {"first_to_last_ratio": {"simple_rnn_1": through.get(verdict, 1 / 250)}}
        found = diagnosis(verdict, through_time=ratios, **evidence)
        for item in prescribe(spec, found).get(verdict, []):
            seen.add((verdict, item["fix"]))
            for text in (item["rationale"], item["expected"]):
                assert "{" not in text and "unknown" not in text, text
                assert not text[0].islower() and text.endswith("."), text
    every_line = {
        (verdict, remedy.fix.value) for verdict, lines in RANKINGS.items() for remedy in lines
    }
    assert seen == every_line


def test_every_verdict_with_fixes_has_a_finding_and_an_explanation() -> None:
    assert set(RANKINGS) == set(FINDINGS)
    for verdict in [*RANKINGS, "healthy"]:
        assert explanation(verdict).meaning


# --------------------------------------------------------------------------- patches


@pytest.mark.parametrize("verdict", list(RANKINGS))
def test_every_patch_applies_as_a_merge_patch_and_changes_what_it_says(verdict: str) -> None:
    original = TUTORIAL.model_dump(mode="json")
    for item in prescribe(TUTORIAL, diagnosis(verdict)).get(verdict, []):
        patched = ExperimentSpec.model_validate(merge_patch(original, item["patch"]))
        after = patched.model_dump(mode="json")
        for path, value in patch_paths(item["patch"]):
            node: Any = after
            for part in path.split("."):
                node = node[part]
            assert node == value, (item["fix"], path)
        assert patched != TUTORIAL


def test_an_applied_fix_is_not_prescribed_again() -> None:
    for chosen in FIXES:
        if chosen.id is FixId.LOWER_LEARNING_RATE:
            continue  # always ten times lower than whatever the run has
        patch = chosen.patch_for(TUTORIAL)
        if patch is None:
            continue
        patched = ExperimentSpec.model_validate(
            merge_patch(TUTORIAL.model_dump(mode="json"), patch)
        )
        assert chosen.patch_for(patched) is None, chosen.id


def test_a_lower_learning_rate_is_ten_times_lower_than_the_runs() -> None:
    assert fix(FixId.LOWER_LEARNING_RATE).patch_for(TUTORIAL) == {
        "training": {"optimizer": {"learning_rate": 0.0001}}
    }
    sgd = ExperimentSpec.model_validate(
        {"training": {"optimizer": {"kind": "sgd", "learning_rate": 1.0}}}
    )
    assert fix(FixId.LOWER_LEARNING_RATE).patch_for(sgd) == {
        "training": {"optimizer": {"learning_rate": 0.1}}
    }


def test_clipping_by_norm_replaces_clipping_by_value() -> None:
    spec = ExperimentSpec.model_validate({"training": {"clipvalue": 5.0}})
    patch = fix(FixId.CLIP_GRADIENTS).patch_for(spec)
    assert patch == {"training": {"clipnorm": 1.0, "clipvalue": None}}
    patched = ExperimentSpec.model_validate(merge_patch(spec.model_dump(mode="json"), patch))
    assert (patched.training.clipnorm, patched.training.clipvalue) == (1.0, None)


def test_the_keras_default_learning_rates_are_keras_own() -> None:
    from core.engine.optimizer import default_learning_rate

    assert set(KERAS_LEARNING_RATES) == set(OptimizerKind)
    for kind, rate in KERAS_LEARNING_RATES.items():
        assert default_learning_rate(kind) == pytest.approx(rate), kind


# ---------------------------------------------------------------------------- support


def measurement(*, had: int = 5, cleared: int, gain: float | None) -> Measurement:
    return Measurement(
        "vanishing", Activation.SIGMOID, FixId.TANH, "n", 5, had, cleared, gain, 0.0, 0.01, 1.0
    )


@pytest.mark.parametrize(
    ("had", "cleared", "gain", "support"),
    [
        (5, 5, 0.3, Support.HELPS),
        (5, 4, 0.0, Support.HELPS),
        (5, 5, -0.02, Support.PARTLY),  # cleared, but accuracy fell
        (5, 1, 0.0, Support.PARTLY),
        (5, 0, 0.2, Support.PARTLY),  # accuracy rose though the verdict stayed
        (5, 0, 0.01, Support.DOES_NOT_HELP),
        (0, 0, 0.0, Support.DOES_NOT_HELP),
    ],
)
def test_support_reads_the_measurement(
    had: int, cleared: int, gain: float, support: Support
) -> None:
    assert support_of(measurement(had=had, cleared=cleared, gain=gain)) is support
    assert support_of(None) is Support.UNTESTED


def test_every_measurement_is_of_a_fix_its_verdict_prescribes_for_its_network() -> None:
    assert MEASURED, "benchmarks/remedies.py --emit writes them"
    for m in MEASURED:
        lines = [r for r in RANKINGS[m.verdict] if r.fix is m.fix and m.activation in r.only_for]
        assert lines, m
        assert measurement_for(m.verdict, m.fix, [m.activation] * 4) is m
    assert measurement_for("vanishing", FixId.TANH, [Activation.SIGMOID, Activation.RELU]) is None


def test_the_measured_table_reads_back_what_the_benchmark_writes() -> None:
    table = TABLE.read_text(encoding="utf-8")
    command = json.loads(table)["command"]
    assert command.startswith("python benchmarks/remedies.py")
    # The file is the writer's output, not edited by hand, and reads back whole.
    assert write_table(MEASURED, command=command) == table
    assert read_table(table) == MEASURED
    assert {m.verdict for m in MEASURED} == {"vanishing", "exploding", "dead_units"}
    assert all(m.cleared <= m.had <= m.seeds for m in MEASURED)


# ------------------------------------------------------------------------ explanations


def test_explanations_cite_the_papers_behind_the_fixes() -> None:
    cited = {key for item in EXPLANATIONS for key in item.read_more}
    cited |= {key for chosen in FIXES for key in chosen.read_more}
    assert {"glorot2010", "he2015", "ioffe2015", "pascanu2013", "hochreiter1997"} <= cited
    assert cited <= set(REFERENCES)
    assert all(reference.url.startswith("https://") for reference in REFERENCES.values())


def test_a_result_carries_the_explanations_of_its_verdicts() -> None:
    advised = advise(TUTORIAL, diagnosis("vanishing", "saturated"))
    assert list(advised["explanations"]) == ["vanishing", "saturated"]
    assert advised["explanations"]["vanishing"]["read_more"][0]["key"] == "glorot2010"
    assert explain(["no_such_verdict"]) == {}
