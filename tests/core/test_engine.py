"""The engine: captured numbers equal an independent computation, runs repeat exactly,
the tutorial's result holds, and a blown-up run still gives valid JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.engine.hardware import cpu_name
from core.engine.network import ACTIVATION_FUNCTIONS
from core.engine.recorder import histogram
from core.engine.run import device_info, run_experiment
from core.engine.trainer import ACTIVATION_STATS, activation_stats
from core.experiment.hooks import TrainingCancelled, TrainingHook
from core.experiment.result import dumps_result
from core.experiment.spec import Activation, ExperimentSpec

SMALL = {
    "dataset": {"kind": "moons", "n_samples": 24, "noise": 0.2},
    "model": {"hidden_layers": [4, 3], "activation": "tanh"},
    "training": {"epochs": 2, "batch_size": 24},
    "capture": {"every": "step", "raw": True},
}


def spec_of(payload: dict[str, Any], **overrides: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"seed": 11, **payload, **overrides})


def load_npz(data: bytes | None) -> dict[str, np.ndarray]:
    assert data is not None
    with np.load(io.BytesIO(data)) as arrays:
        return {name: arrays[name] for name in arrays.files}


# ------------------------------------------------------------ independent backprop


ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
}


def numpy_gradients(
    weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, activation: str
) -> list[np.ndarray]:
    """Gradients of the mean cross-entropy for an MLP, by hand, in float64.

    `weights` alternates kernel and bias; the last layer is the output (one
    logit with sigmoid cross-entropy, or softmax over several).
    """
    act, slope = ACTIVATIONS[activation]
    params = [w.astype(np.float64) for w in weights]
    h, pre, inputs = x.astype(np.float64), [], []
    for kernel, bias in zip(params[0:-2:2], params[1:-2:2], strict=True):
        inputs.append(h)
        pre.append(h @ kernel + bias)
        h = act(pre[-1])
    logits = h @ params[-2] + params[-1]
    n = len(y)
    if logits.shape[1] == 1:
        d = (1 / (1 + np.exp(-logits[:, 0])) - y)[:, None] / n
    else:
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        d = (probabilities - np.eye(logits.shape[1])[y]) / n
    grads = [h.T @ d, d.sum(axis=0)]
    d = d @ params[-2].T
    for index in range(len(pre) - 1, -1, -1):
        d = d * slope(pre[index])
        grads = [inputs[index].T @ d, d.sum(axis=0), *grads]
        d = d @ params[2 * index].T
    return grads


@pytest.mark.parametrize(
    ("activation", "dataset"),
    [("tanh", "moons"), ("sigmoid", "circles"), ("relu", "blobs")],
)
def test_captured_gradients_equal_numpy_backprop(activation: str, dataset: str) -> None:
    payload = {
        **SMALL,
        "model": {"hidden_layers": [4, 3], "activation": activation},
        "dataset": {"kind": dataset, "n_samples": 24, "noise": 0.2},
    }
    output = run_experiment(spec_of(payload))
    arrays = load_npz(output.arrays)
    names = [
        f"{layer}/{part}"
        for layer in ("hidden_1", "hidden_2", "output")
        for part in ("kernel", "bias")
    ]
    x, y = arrays["dataset/x"], arrays["dataset/y"]
    # Full batch: every step sees the whole set; the second epoch's step starts
    # from the weights the first step left.
    for step in range(2):
        weights = [arrays[f"{name}/weights"][step] for name in names]
        expected = numpy_gradients(weights, x, y, activation)
        for name, want in zip(names, expected, strict=True):
            got = arrays[f"{name}/gradients"][step]
            np.testing.assert_allclose(
                got, want, rtol=2e-4, atol=1e-6, err_msg=f"{name} step {step}"
            )


def test_captured_statistics_describe_the_raw_tensors() -> None:
    output = run_experiment(spec_of(SMALL))
    arrays, series = load_npz(output.arrays), output.result["series"]
    for layer in ("hidden_1", "hidden_2", "output"):
        for part in ("kernel", "bias"):
            stats = series[layer][part]
            for step in range(2):
                w = arrays[f"{layer}/{part}/weights"][step].astype(np.float64)
                g = arrays[f"{layer}/{part}/gradients"][step].astype(np.float64)
                expected = {
                    "weight_mean": w.mean(),
                    "weight_std": w.std(),
                    "weight_norm": np.linalg.norm(w),
                    "weight_max_abs": np.abs(w).max(),
                    "grad_mean": g.mean(),
                    "grad_std": g.std(),
                    "grad_norm": np.linalg.norm(g),
                    "grad_max_abs": np.abs(g).max(),
                }
                for stat, want in expected.items():
                    assert stats[stat][step] == pytest.approx(want, rel=1e-4, abs=1e-7), (
                        f"{layer}/{part} {stat} step {step}"
                    )
            # the update that moved the weights from step 0 to step 1
            w0 = arrays[f"{layer}/{part}/weights"][0].astype(np.float64)
            w1 = arrays[f"{layer}/{part}/weights"][1].astype(np.float64)
            if np.linalg.norm(w0) > 0:
                ratio = np.linalg.norm(w1 - w0) / np.linalg.norm(w0)
                assert stats["update_ratio"][0] == pytest.approx(ratio, rel=1e-3)
            else:
                assert stats["update_ratio"][0] is None  # undefined for zero-initialised biases


def test_rmsprop_step_matches_keras_defaults() -> None:
    """One RMSprop step (rho 0.9, eps 1e-7, lr 1e-3) from the captured gradient."""
    output = run_experiment(spec_of(SMALL, model={"hidden_layers": [4, 3], "activation": "tanh"}))
    arrays = load_npz(output.arrays)
    w0 = arrays["hidden_1/kernel/weights"][0].astype(np.float64)
    g0 = arrays["hidden_1/kernel/gradients"][0].astype(np.float64)
    velocity = 0.1 * g0**2
    expected = w0 - 1e-3 * g0 / (np.sqrt(velocity) + 1e-7)
    np.testing.assert_allclose(arrays["hidden_1/kernel/weights"][1], expected, rtol=1e-4, atol=1e-6)


def test_epoch_capture_follows_the_tutorials_semantics() -> None:
    spec = spec_of({"training": {"epochs": 3}, "capture": {"raw": True}})
    result = run_experiment(spec).result
    arrays = load_npz(run_experiment(spec).arrays)
    tutorial = result["tutorial"]
    assert tutorial["epochs"] == [0, 1, 2, 3]
    for layer in ("hidden_1", "output"):
        weights = arrays[f"{layer}/kernel/weights"]  # before each epoch's first step
        gradients = arrays[f"{layer}/kernel/gradients"]  # at each epoch's first step
        assert weights.shape[0] == gradients.shape[0] == 3
        assert tutorial["weights"][layer]["mean"][0] == pytest.approx(weights[0].mean(), abs=1e-6)
        assert tutorial["weights"][layer]["std"][1] == pytest.approx(weights[1].std(), rel=1e-5)
        for epoch in range(3):
            assert tutorial["gradients"][layer]["std"][epoch] == pytest.approx(
                gradients[epoch].std(), rel=1e-4
            )
    assert len(tutorial["loss"]) == 3
    assert result["capture"]["epoch"] == [1, 2, 3]
    assert result["capture"]["step"] == [31, 63, 95]  # 32 steps an epoch, 0-based
    # The untrained network: its weights and the gradient of the very first step.
    for layer in ("hidden_1", "output"):
        initial = result["initial"][layer]["kernel"]
        first_gradient = arrays[f"{layer}/kernel/gradients"][0]
        assert initial["weight_std"] == pytest.approx(arrays[f"{layer}/kernel/weights"][0].std())
        assert initial["grad_std"] == pytest.approx(first_gradient.std(), rel=1e-4)
        assert initial["grad_norm"] == pytest.approx(np.linalg.norm(first_gradient), rel=1e-4)


def test_same_seed_same_numbers() -> None:
    spec = spec_of({"training": {"epochs": 4}, "model": {"activation": "relu"}})
    first, again = run_experiment(spec).result, run_experiment(spec).result
    for key in ("series", "history", "metrics", "tutorial", "histograms", "boundary", "diagnosis"):
        assert first[key] == again[key], key
    other = run_experiment(spec_of({"training": {"epochs": 4}}, seed=12)).result
    assert other["series"] != first["series"]


def test_history_and_metrics() -> None:
    payload = {"training": {"epochs": 5}, "dataset": {"validation_split": 0.2}}
    result = run_experiment(spec_of(payload)).result
    history = result["history"]
    assert history["epoch"] == [1, 2, 3, 4, 5]
    assert len(history["loss"]) == len(history["val_loss"]) == len(history["val_accuracy"]) == 5
    metrics = result["metrics"]
    for key in ("before", "after", "validation_before", "validation_after"):
        assert set(metrics[key]) == {"loss", "accuracy"}
        assert 0 <= metrics[key]["accuracy"] <= 1
    assert result["dataset"]["n_train"] == 800 and result["dataset"]["n_validation"] == 200
    assert result["histograms"]["epochs"] == [1, 2, 3, 4, 5]


def test_tutorial_sigmoid_stays_far_below_tanh_and_relu() -> None:
    """The tutorial's result: four sigmoid layers with N(0, 1) learn the circles poorly.

    Judged on the median of three seeds, as a single seed can mislead: over seeds 1 to 8
    sigmoid ends at 0.60 to 0.77, tanh and relu at 0.98 to 1.0, but relu's seed 11 at 0.89.
    """
    accuracy, spread = {}, {}
    for activation in ("sigmoid", "tanh", "relu"):
        runs = [
            run_experiment(spec_of({"model": {"activation": activation}}, seed=seed)).result
            for seed in (1, 2, 3)
        ]
        accuracy[activation] = np.median([r["metrics"]["after"]["accuracy"] for r in runs])
        spread[activation] = np.median(
            [r["tutorial"]["gradients"]["hidden_1"]["std"][0] for r in runs]
        )
        vanishing = ["vanishing" in r["diagnosis"]["verdicts"] for r in runs]
        assert all(vanishing) if activation == "sigmoid" else not any(vanishing)
        # Each run's diagnosis prescribes its own fixes, and explains its verdicts.
        prescribed = [r["diagnosis"]["prescriptions"] for r in runs]
        if activation == "sigmoid":
            assert [p["vanishing"][0]["fix"] for p in prescribed] == ["tanh"] * 3
            assert all("vanishing" in r["diagnosis"]["explanations"] for r in runs)
        elif activation == "tanh":
            assert prescribed == [{}] * 3
    assert accuracy["sigmoid"] < 0.75
    assert accuracy["tanh"] > 0.95 and accuracy["relu"] > 0.95
    # the first layer's gradient S.D. is orders of magnitude smaller for sigmoid
    assert spread["sigmoid"] * 10 < min(spread["tanh"], spread["relu"])


def test_exploding_run_gives_valid_json_and_the_diverged_verdict() -> None:
    payload = {
        "model": {
            "hidden_layers": [32] * 10,
            "activation": "relu",
            "initializer": {"kind": "random_normal", "stddev": 10},
        },
        "training": {"epochs": 5, "optimizer": {"kind": "sgd", "learning_rate": 1.0}},
    }
    result = run_experiment(spec_of(payload)).result
    assert result["diverged"] is True
    assert {"diverged", "exploding"} <= set(result["diagnosis"]["verdicts"])
    assert result["diagnosis"]["evidence"]["diverged"]["first_non_finite_epoch"] is not None
    assert {"diverged", "exploding"} <= set(result["diagnosis"]["prescriptions"])
    text = dumps_result(result)
    parsed = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in JSON"))
    assert None in parsed["history"]["loss"]


def test_other_models_train() -> None:
    payload = {
        "dataset": {"kind": "iris", "validation_split": 0.2},
        "model": {
            "hidden_layers": [16, 16, 16],
            "activation": ["relu", "gelu", "selu"],
            "batch_norm": True,
            "residual": True,
            "initializer": {"kind": "he_normal"},
        },
        "training": {"epochs": 30, "batch_size": 16, "optimizer": {"kind": "adam"}, "clipnorm": 1},
    }
    result = run_experiment(spec_of(payload)).result
    assert result["metrics"]["after"]["accuracy"] > 0.8
    assert [layer["units"] for layer in result["layers"]] == [16, 16, 16, 3]
    assert result["layers"][-1]["activation"] == "softmax"
    assert result["boundary"] is None and result["dataset"]["points"]["projection"] == "pca"
    relu, gelu, selu = (result["series"][f"hidden_{i}"]["activation"] for i in (1, 2, 3))
    assert relu["saturated"] is None and relu["negative"] is None
    assert relu["dead"] is not None
    for leaky in (gelu, selu):  # they pass a gradient below zero: never dead
        assert leaky["dead"] is None and leaky["negative"] is not None


class StopAfter(TrainingHook):
    def __init__(self, epochs: int) -> None:
        self.epochs, self.seen = epochs, []

    def on_epoch_end(self, epoch: int, epochs: int, logs: Any) -> None:
        self.seen.append((epoch, epochs, logs["loss"]))
        if epoch == self.epochs:
            raise TrainingCancelled


def test_hooks_see_every_epoch_and_can_cancel() -> None:
    hook = StopAfter(3)
    with pytest.raises(TrainingCancelled):
        run_experiment(spec_of({"training": {"epochs": 10}}), [hook])
    assert [(epoch, total) for epoch, total, _ in hook.seen] == [(1, 10), (2, 10), (3, 10)]
    assert all(isinstance(loss, float) for _, _, loss in hook.seen)


def test_the_cpu_is_named_by_its_model_or_plainly_cpu(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    intel.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        "model name\t: Intel(R) Xeon(R)  CPU @ 2.20GHz\nflags\t\t: fpu vme\n\n"
        "processor\t: 1\nmodel name\t: something else\n"
    )
    assert cpu_name(intel) == "CPU (Intel(R) Xeon(R) CPU @ 2.20GHz)"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n")
    assert cpu_name(arm) == "CPU"
    blank = tmp_path / "blank"
    blank.write_text("model name\t:   \n")
    assert cpu_name(blank) == "CPU"
    assert cpu_name(tmp_path / "missing") == "CPU"


def test_the_device_record_says_cpu_not_the_machine_type() -> None:
    device = device_info()
    if device["kind"] == "cpu":
        assert device["name"] == cpu_name()
        assert device["name"].startswith("CPU")
        assert device["name"] not in {"x86_64", "aarch64"}
    assert set(device) == {"kind", "name", "tensorflow"}


@pytest.mark.parametrize(
    ("kind", "dead", "negative"),
    [
        ("relu", 0.5, None),
        ("leaky_relu", None, 0.5),
        ("elu", None, 0.5),
        ("selu", None, 0.5),
        ("gelu", None, 0.5),
        ("swish", None, 0.5),
        ("tanh", None, None),
    ],
)
def test_only_relu_units_below_zero_everywhere_are_dead(
    kind: str, dead: float | None, negative: float | None
) -> None:
    # unit 0 is below zero on every sample, unit 1 on one sample of three
    z = np.array([[-1.0, 2.0], [-0.5, -3.0], [0.0, 1.0]], dtype=np.float32)
    activation = Activation(kind)
    stats = activation_stats(z, ACTIVATION_FUNCTIONS[activation](z), activation).numpy()
    by_name = dict(zip(ACTIVATION_STATS, stats.tolist(), strict=True))
    for name, want in (("dead", dead), ("negative", negative)):
        if want is None:
            assert np.isnan(by_name[name]), name
        else:
            assert by_name[name] == want, name


def kernel_max_abs(counted: dict[str, Any]) -> float:
    """A histogram's range is symmetric about zero, out to the largest |value|."""
    return float(counted["edges"][-1])


@pytest.mark.parametrize("largest", [0.12392426282167435, 0.12392422556877136, 0.1, 3.3])
def test_exact_zeros_count_right_of_zero_whatever_the_largest_value(largest: float) -> None:
    # A dead unit's gradients are exactly zero. With the first of these largest values,
    # NumPy's computed middle edge is 1.4e-17, which put the zeros left of it.
    values = np.array([0.0, 0.0, 0.0, -largest, largest], dtype=np.float64)
    counted = histogram(values, bins=30)
    assert counted["edges"][15] == 0.0
    assert counted["counts"][14:16] == [0, 3]
    assert counted["counts"][0] == counted["counts"][-1] == 1
    odd = histogram(values, bins=5)  # zero inside the middle bin
    assert odd["counts"] == [1, 0, 3, 0, 1]


def test_histogram_snapshots_end_with_the_trained_network() -> None:
    payload = {**SMALL, "training": {"epochs": 5, "batch_size": 8}}
    output = run_experiment(spec_of(payload))  # raw tensors before every step
    arrays, histograms = load_npz(output.arrays), output.result["histograms"]
    # capturing every epoch records the weights after each epoch's last step
    by_epoch = run_experiment(spec_of({**payload, "capture": {"every": "epoch"}})).result
    assert by_epoch["histograms"] == histograms
    # 5 snapshots: the first step of epochs 1, 2, 3 and 4, then after the last step of 5
    assert histograms["epochs"] == [1, 2, 3, 4, 5]
    assert histograms["at"] == ["start"] * 4 + ["end"]
    steps = 3  # 24 samples in batches of 8
    for layer in ("hidden_1", "output"):
        weights = histograms[layer]["weights"]
        gradients = histograms[layer]["gradients"]
        raw_w = arrays[f"{layer}/kernel/weights"]  # before each step
        raw_g = arrays[f"{layer}/kernel/gradients"]
        for index, epoch in enumerate([1, 2, 3, 4]):
            first = (epoch - 1) * steps
            assert kernel_max_abs(weights[index]) == pytest.approx(np.abs(raw_w[first]).max())
            assert kernel_max_abs(gradients[index]) == pytest.approx(np.abs(raw_g[first]).max())
        # the end: the weights after training, and the gradient of the last step
        trained = by_epoch["series"][layer]["kernel"]["weight_max_abs"][-1]
        assert kernel_max_abs(weights[-1]) == pytest.approx(trained, rel=1e-6)
        assert kernel_max_abs(weights[-1]) != pytest.approx(np.abs(raw_w[-1]).max(), rel=1e-6)
        assert kernel_max_abs(gradients[-1]) == pytest.approx(np.abs(raw_g[-1]).max())
        assert sum(weights[-1]["counts"]) == raw_w[-1].size


def test_a_diverged_run_still_ends_its_histograms_where_it_stopped() -> None:
    payload = {
        "model": {
            "hidden_layers": [32] * 10,
            "activation": "relu",
            "initializer": {"kind": "random_normal", "stddev": 10},
        },
        "training": {"epochs": 50, "optimizer": {"kind": "sgd", "learning_rate": 1.0}},
    }
    result = run_experiment(spec_of(payload)).result
    stopped = result["diverged_at_epoch"]
    assert stopped is not None and stopped < 12  # before the second start snapshot
    histograms = result["histograms"]
    assert histograms["epochs"] == [1, stopped]
    assert histograms["at"] == ["start", "end"]
    assert all(len(histograms[layer["name"]]["weights"]) == 2 for layer in result["layers"])
