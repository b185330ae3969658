"""Verdicts from stored series: each fires on its own evidence and thresholds."""

from __future__ import annotations

from typing import Any

from core.experiment.diagnosis import DEAD_FRACTION, NO_DEPTH, VANISHING_RATIO, diagnose

LAYERS = ["hidden_1", "hidden_2", "output"]


def result_with(
    grad_norms: dict[str, list[float | None]],
    *,
    loss: list[float | None] | None = None,
    activation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A minimal result: 2-4-4-1 layers, `grad_norms` per layer, finite weights."""
    points = len(next(iter(grad_norms.values())))
    stats = ("weight_norm", "grad_norm", "grad_max_abs")
    series = {}
    for name in LAYERS:
        kernel = {stat: [1.0] * points for stat in stats} | {"grad_norm": grad_norms[name]}
        kernel["grad_max_abs"] = grad_norms[name]
        layer: dict[str, Any] = {"kernel": kernel, "bias": {stat: [1.0] * points for stat in stats}}
        if name != "output":
            layer["activation"] = (activation or {}).get(name, {"saturated": None, "dead": None})
        series[name] = layer
    return {
        "series": series,
        "layers": [
            {"name": "hidden_1", "units": 4, "parameters": 12},
            {"name": "hidden_2", "units": 4, "parameters": 20},
            {"name": "output", "units": 1, "parameters": 5},
        ],
        "history": {"loss": loss or [0.5] * points},
    }


def test_equal_rms_gradients_are_healthy() -> None:
    # kernels of 8, 16 and 4 weights: equal RMS means norms in ratio sqrt(8):sqrt(16):sqrt(4)
    norms = {"hidden_1": [8**0.5] * 5, "hidden_2": [4.0] * 5, "output": [2.0] * 5}
    diagnosis = diagnose(result_with(norms))
    assert diagnosis["verdicts"] == ["healthy"]
    assert diagnosis["evidence"]["gradient_flow"]["first_to_last_rms_ratio"] == 1.0


def test_first_layer_far_below_the_last_is_vanishing() -> None:
    ratio = VANISHING_RATIO / 2
    norms = {"hidden_1": [8**0.5 * ratio] * 5, "hidden_2": [1.0] * 5, "output": [2.0] * 5}
    diagnosis = diagnose(result_with(norms))
    assert diagnosis["verdicts"] == ["vanishing"]
    assert abs(diagnosis["evidence"]["gradient_flow"]["first_to_last_rms_ratio"] - ratio) < 1e-9


def test_huge_gradients_are_exploding() -> None:
    norms = {"hidden_1": [1e5] * 5, "hidden_2": [1e4] * 5, "output": [1.0] * 5}
    assert "exploding" in diagnose(result_with(norms))["verdicts"]


def test_non_finite_loss_is_diverged_with_the_epoch() -> None:
    norms = {name: [1.0, 1e6, None] for name in LAYERS}
    diagnosis = diagnose(result_with(norms, loss=[0.7, 5.0, None]))
    assert {"diverged", "exploding"} <= set(diagnosis["verdicts"])
    evidence = diagnosis["evidence"]["diverged"]
    assert evidence["first_non_finite_epoch"] == 3
    assert evidence["layers_with_non_finite_values"] == LAYERS


def test_dead_and_saturated_layers_are_named() -> None:
    norms = {"hidden_1": [8**0.5] * 10, "hidden_2": [4.0] * 10, "output": [2.0] * 10}
    activation = {
        "hidden_1": {"saturated": None, "dead": [0.0] * 9 + [DEAD_FRACTION]},
        "hidden_2": {"saturated": [0.9] * 10, "dead": None},
    }
    diagnosis = diagnose(result_with(norms, activation=activation))
    assert set(diagnosis["verdicts"]) == {"dead_units", "saturated"}
    assert diagnosis["evidence"]["dead_units"] == {"hidden_1": DEAD_FRACTION}
    assert diagnosis["evidence"]["saturated"] == {"hidden_2": 0.9}


def test_units_negative_past_relu_are_evidence_not_dead() -> None:
    # leaky_relu, elu, selu, gelu and swish pass a gradient below zero: not dead.
    norms = {"hidden_1": [8**0.5] * 10, "hidden_2": [4.0] * 10, "output": [2.0] * 10}
    activation = {
        "hidden_1": {"saturated": None, "dead": None, "negative": [1.0] * 10},
        "hidden_2": {"saturated": None, "dead": [0.1] * 10, "negative": None},
    }
    diagnosis = diagnose(result_with(norms, activation=activation))
    assert diagnosis["verdicts"] == ["healthy"]
    assert diagnosis["evidence"]["negative_units"] == {"hidden_1": 1.0}
    assert diagnosis["evidence"]["dead_units"] == {"hidden_2": 0.1}


def without(result: dict[str, Any], *, kernel_stats: frozenset[str]) -> dict[str, Any]:
    """`result` with the given stats dropped from every kernel and bias, and no activations."""
    for layer in result["series"].values():
        layer.pop("activation", None)
        for part in ("kernel", "bias"):
            for stat in kernel_stats:
                layer[part].pop(stat, None)
    return result


def test_verdicts_without_their_numbers_are_not_judged_but_the_loss_still_diverges() -> None:
    norms = {"hidden_1": [1e-9, 1e9, None], "hidden_2": [1.0] * 3, "output": [2.0] * 3}
    result = without(
        result_with(norms, loss=[0.7, 5.0, None]),
        kernel_stats=frozenset({"grad_norm", "grad_max_abs"}),
    )
    diagnosis = diagnose(result)
    assert diagnosis["verdicts"] == ["diverged"]  # not vanishing, nor exploding
    assert diagnosis["evidence"]["not_judged"] == {
        "vanishing": "gradients were not captured",
        "exploding": "gradients were not captured",
        "dead_units": "activations were not captured",
        "saturated": "activations were not captured",
    }
    assert diagnosis["evidence"]["diverged"]["first_non_finite_epoch"] == 3
    assert diagnosis["evidence"]["diverged"]["gradients_blew_up"] is None
    assert diagnosis["evidence"]["gradient_flow"]["first_to_last_rms_ratio"] is None


def test_everything_captured_leaves_nothing_unjudged() -> None:
    norms = {"hidden_1": [8**0.5] * 5, "hidden_2": [4.0] * 5, "output": [2.0] * 5}
    assert diagnose(result_with(norms))["evidence"]["not_judged"] == {}


def recurrent(result: dict[str, Any], *names: str) -> dict[str, Any]:
    """`result` with layers `names` recurrent (10 time steps)."""
    for layer in result["layers"]:
        if layer["name"] in names:
            layer["timesteps"] = 10
    return result


def test_a_recurrent_layer_is_left_out_of_the_depth_ratio() -> None:
    # The GRU and LSTM that recall a symbol 10 steps back perfectly have an input kernel
    # gradient 1/22 to 1/67 of the output's: time, not depth, and not a depth verdict.
    norms = {"hidden_1": [1e-3] * 5, "hidden_2": [4.0] * 5, "output": [2.0] * 5}
    diagnosis = diagnose(recurrent(result_with(norms), "hidden_1"))
    assert diagnosis["verdicts"] == ["healthy"]
    flow = diagnosis["evidence"]["gradient_flow"]
    assert flow["first_layer"] == "hidden_2" and flow["first_to_last_rms_ratio"] == 1.0
    assert flow["median_rms_grad"]["hidden_1"] is not None  # still reported


def test_only_recurrent_layers_before_the_output_leave_vanishing_unjudged() -> None:
    norms = {"hidden_1": [1e-3] * 5, "hidden_2": [1e-3] * 5, "output": [2.0] * 5}
    diagnosis = diagnose(recurrent(result_with(norms), "hidden_1", "hidden_2"))
    assert diagnosis["verdicts"] == ["healthy"]
    assert diagnosis["evidence"]["not_judged"]["vanishing"] == NO_DEPTH
    assert diagnosis["evidence"]["gradient_flow"]["first_to_last_rms_ratio"] is None
    huge = {"hidden_1": [1e5] * 5, "hidden_2": [1.0] * 5, "output": [2.0] * 5}
    assert diagnose(recurrent(result_with(huge), "hidden_1", "hidden_2"))["verdicts"] == [
        "exploding"
    ]  # by the norm, which needs no depth
