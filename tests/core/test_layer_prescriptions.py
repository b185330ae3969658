"""Prescriptions for a network given as Keras layers: whole new lists, ranked as data says."""

from __future__ import annotations

from typing import Any

import pytest

from core.experiment.fixes import FixId, fix
from core.experiment.merge_patch import merge_patch
from core.experiment.prescriptions import RANKINGS, prescribe
from core.experiment.presets import ADDING, RECALL, cell
from core.experiment.spec import ExperimentSpec
from tests.core.test_prescriptions import SIMPLE_RNN, conv_list, diagnosis, layered


def through_time(verdict: str, ratio: float, layer: str = "simple_rnn_1") -> dict[str, Any]:
    return diagnosis(verdict, through_time={"first_to_last_ratio": {layer: ratio}})


def patched(spec: ExperimentSpec, patch: dict[str, Any]) -> ExperimentSpec:
    return ExperimentSpec.model_validate(merge_patch(spec.model_dump(mode="json"), patch))


def classes_of(spec: ExperimentSpec) -> list[str]:
    return [layer.class_name for layer in spec.model.layers or []]


def test_a_simple_rnn_vanishing_through_time_is_prescribed_gated_cells() -> None:
    ranked = prescribe(SIMPLE_RNN, through_time("vanishing_through_time", 1 / 250))
    items = ranked["vanishing_through_time"]
    assert [item["fix"] for item in items] == ["lstm", "gru"]
    assert [item["support"] for item in items] == ["untested", "untested"]
    assert items[0]["patch"] == {
        "model": {"layers": [{"class_name": "LSTM", "config": {"units": 16}}]}
    }
    assert classes_of(patched(SIMPLE_RNN, items[1]["patch"])) == ["GRU"]
    assert items[0]["rationale"].startswith(
        "Simple_rnn_1's gradient with respect to its first hidden state is 1/250 of that "
        "with respect to its last, 9 steps later; an LSTM's cell state"
    )
    assert items[0]["read_more"][0]["key"] == "hochreiter1997"


def test_a_ratio_that_underflowed_still_reads_as_a_sentence() -> None:
    (item, _) = prescribe(SIMPLE_RNN, through_time("vanishing_through_time", 0.0))[
        "vanishing_through_time"
    ]
    assert "is a vanishing fraction (0 in float32) of that" in item["rationale"]


def test_exploding_through_time_clips_first_then_slows_then_gates() -> None:
    ranked = prescribe(SIMPLE_RNN, through_time("exploding_through_time", 320.0))
    items = ranked["exploding_through_time"]
    assert [item["fix"] for item in items] == [
        "clip_gradients",
        "lower_learning_rate",
        "lstm",
        "gru",
    ]
    assert items[0]["patch"] == {"training": {"clipnorm": 1.0}}
    assert "is 320 times that with respect to its last" in items[0]["rationale"]
    assert classes_of(patched(SIMPLE_RNN, items[2]["patch"])) == ["LSTM"]


def test_gated_cells_are_not_prescribed_where_there_is_no_simple_rnn() -> None:
    lstm = layered(RECALL, [cell("LSTM")])
    assert prescribe(lstm, through_time("vanishing_through_time", 1e-4, "lstm_1")) == {}
    assert fix(FixId.LSTM).patch_for(ExperimentSpec()) is None  # nor for an MLP


def test_a_simple_rnn_in_a_residual_block_and_beside_other_layers_is_swapped_in_place() -> None:
    spec = layered(
        ADDING,
        [
            cell("SimpleRNN", 8, return_sequences=True),
            {
                "class_name": "Residual",
                "config": {"layers": [cell("SimpleRNN", 8, return_sequences=True)]},
            },
            cell("GRU", 8),
        ],
    )
    after = patched(spec, fix(FixId.LSTM).patch_for(spec) or {})
    assert classes_of(after) == ["LSTM", "Residual", "GRU"]
    inner = after.model.layers[1].config.layers  # type: ignore[index, union-attr]
    assert [layer.class_name for layer in inner] == ["LSTM"]
    assert after.model.layers[0].config.return_sequences  # type: ignore[index, union-attr]


def test_a_deep_sigmoid_conv_list_is_prescribed_whole_lists_in_the_textbooks_order() -> None:
    spec = conv_list("sigmoid")
    items = prescribe(spec, diagnosis("vanishing", ratio=1 / 2000))["vanishing"]
    # Measured on the tutorial's MLP only: a conv list of sigmoid is untested, table order;
    # He is for the ReLU family, and Glorot is Keras' default kernel initializer already.
    fixes = [item["fix"] for item in items]
    assert fixes == ["tanh", "batch_norm", "relu", "residual"]
    assert {item["support"] for item in items} == {"untested"}
    for item in items:
        assert list(item["patch"]) == ["model"] and list(item["patch"]["model"]) == ["layers"]
        patched(spec, item["patch"])  # a valid spec
    assert "4 sigmoid layers can shrink it up to 4^4 = 256 times" in items[0]["rationale"]
    norm = patched(spec, items[fixes.index("batch_norm")]["patch"])
    assert classes_of(norm)[:3] == ["Conv2D", "BatchNormalization", "Activation"]
    assert norm.model.layers[0].config.activation.value == "linear"  # type: ignore[index, union-attr]
    residual = patched(spec, items[fixes.index("residual")]["patch"])
    assert classes_of(residual) == [
        "Conv2D",
        "Activation",
        *["Residual"] * 3,
        "GlobalAveragePooling2D",
    ]


def test_a_fix_the_list_has_already_is_not_prescribed() -> None:
    normed = layered(
        {"kind": "bars", "image_size": 16, "noise": 0.5, "n_samples": 1000},
        [
            {"class_name": "Conv2D", "config": {"filters": 8, "kernel_size": 3, "padding": "same"}},
            {"class_name": "BatchNormalization"},
            {"class_name": "Activation", "config": {"activation": "sigmoid"}},
            {"class_name": "Conv2D", "config": {"filters": 8, "kernel_size": 3, "padding": "same"}},
            {"class_name": "GlobalAveragePooling2D"},
        ],
    )
    assert fix(FixId.BATCH_NORM).patch_for(normed) is None
    assert fix(FixId.GLOROT_INIT).patch_for(normed) is None  # Keras' default kernel init
    for chosen in (FixId.TANH, FixId.RESIDUAL, FixId.HE_INIT):
        patch = fix(chosen).patch_for(normed)
        assert patch is not None
        assert fix(chosen).patch_for(patched(normed, patch)) is None, chosen


@pytest.mark.parametrize("verdict", ["vanishing_through_time", "exploding_through_time"])
def test_the_recurrent_rankings_are_data(verdict: str) -> None:
    assert [remedy.fix for remedy in RANKINGS[verdict]] == {
        "vanishing_through_time": [FixId.LSTM, FixId.GRU],
        "exploding_through_time": [
            FixId.CLIP_GRADIENTS,
            FixId.LOWER_LEARNING_RATE,
            FixId.LSTM,
            FixId.GRU,
        ],
    }[verdict]
