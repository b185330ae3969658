"""The capture switches: what is off is absent everywhere, the plots and the diagnosis
say so, and training is the same, so every number still captured is too."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from core.engine import trainer as trainer_module
from core.engine.run import RunOutput, run_experiment
from core.experiment.result import dumps_result
from core.experiment.spec import ExperimentSpec
from core.plotting.catalog import EXPERIMENT_PLOTS, available_plots, render_plot
from core.plotting.kinds import PlotUnavailableError

# An MLP has no recurrent layer and no convolution: no gradients through time or per channel.
PLOT_NAMES = tuple(
    name for name in EXPERIMENT_PLOTS.names if name not in {"through_time", "channels"}
)

BASE: dict[str, Any] = {
    "seed": 5,
    "dataset": {"kind": "moons", "n_samples": 48, "noise": 0.2, "validation_split": 0.25},
    "model": {"hidden_layers": [4, 3], "activation": ["relu", "tanh"]},
    "training": {"epochs": 4, "batch_size": 12},
    "capture": {"raw": True, "histogram_snapshots": 3},
}
SWITCHES = ("weights", "gradients", "activations")
# Keys that hold each switch's numbers, wherever they appear in a result.
KEYS = {
    "weights": {"weight_mean", "weight_std", "weight_norm", "weight_max_abs", "update_ratio"}
    | {"weights"},
    "gradients": {"grad_mean", "grad_std", "grad_norm", "grad_max_abs", "gradients"},
    "activations": {"activation", "saturated", "dead", "negative"},
}
# The plots drawn from each switch's numbers.
PLOTS = {
    "weights": {"weights"},
    "gradients": {"gradients", "gradient_flow", "histograms"},
    "activations": {"activations"},
}
NOT_JUDGED = {
    "weights": {},
    "gradients": {
        "vanishing": "gradients were not captured",
        "exploding": "gradients were not captured",
    },
    "activations": {
        "dead_units": "activations were not captured",
        "saturated": "activations were not captured",
    },
}


def spec_with(every: str, **capture: Any) -> ExperimentSpec:
    payload = {**BASE, "capture": {**BASE["capture"], "every": every, **capture}}
    return ExperimentSpec.model_validate(payload)


def keys_in(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield key
            yield from keys_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_in(item)


def data_keys(result: Mapping[str, Any]) -> set[str]:
    """Every key in the captured parts: not the spec (it names the switches), the layers
    (each names its activation function) or the diagnosis (it names verdicts)."""
    skip = {"spec", "layers", "diagnosis"}
    return set(keys_in({k: v for k, v in result.items() if k not in skip}))


def npz_names(output: RunOutput) -> set[str]:
    assert output.arrays is not None
    with np.load(io.BytesIO(output.arrays)) as arrays:
        return set(arrays.files)


@pytest.fixture(scope="module", params=["epoch", "step"])
def runs(request: pytest.FixtureRequest) -> dict[str | None, RunOutput]:
    """The run with everything captured (key None) and with each switch off."""
    every = request.param
    out: dict[str | None, RunOutput] = {None: run_experiment(spec_with(every))}
    for switch in SWITCHES:
        out[switch] = run_experiment(spec_with(every, **{switch: False}))
    return out


@pytest.mark.parametrize("switch", SWITCHES)
def test_a_switch_off_trains_the_same_numbers(
    runs: dict[str | None, RunOutput], switch: str
) -> None:
    full, off = runs[None].result, runs[switch].result
    assert off["history"] == full["history"]
    assert off["metrics"] == full["metrics"]
    assert off["boundary"] == full["boundary"]
    # What is still captured is what the full run captured.
    for name, layer in off["series"].items():
        for part, stats in layer.items():
            for stat, values in stats.items():
                assert values == full["series"][name][part][stat], (name, part, stat)


@pytest.mark.parametrize("switch", SWITCHES)
def test_a_switch_off_leaves_its_numbers_out_everywhere(
    runs: dict[str | None, RunOutput], switch: str
) -> None:
    full, off = runs[None], runs[switch]
    assert KEYS[switch] <= data_keys(full.result)
    assert not KEYS[switch] & data_keys(off.result)
    others = set(SWITCHES) - {switch}
    for other in others:
        assert KEYS[other] <= data_keys(off.result), other
    # The raw arrays too.
    part = {"weights": "/weights", "gradients": "/gradients"}.get(switch)
    names = npz_names(off)
    assert {"dataset/x", "dataset/y"} <= names
    if part is not None:
        assert not any(name.endswith(part) for name in names)
        assert any(name.endswith(part) for name in npz_names(full))
        assert len(names) == len(npz_names(full)) - 6  # kernel and bias of 3 layers
    else:
        assert names == npz_names(full)


@pytest.mark.parametrize("switch", SWITCHES)
def test_plots_of_a_switch_off_are_unavailable_and_the_rest_draw(
    runs: dict[str | None, RunOutput], switch: str
) -> None:
    result = json.loads(dumps_result(runs[switch].result))  # as a client stores it
    assert available_plots(json.loads(dumps_result(runs[None].result))) == list(PLOT_NAMES)
    assert set(available_plots(result)) == set(PLOT_NAMES) - PLOTS[switch]
    for name in PLOT_NAMES:
        if name in PLOTS[switch]:
            with pytest.raises(PlotUnavailableError, match="not captured"):
                render_plot(name, result, width=320, height=240, dpi=50)
        else:
            assert render_plot(name, result, width=320, height=240, dpi=50)[:4] == b"\x89PNG"


@pytest.mark.parametrize("switch", SWITCHES)
def test_the_diagnosis_says_what_it_could_not_judge(
    runs: dict[str | None, RunOutput], switch: str
) -> None:
    full, off = runs[None].result["diagnosis"], runs[switch].result["diagnosis"]
    assert full["evidence"]["not_judged"] == {}
    assert off["evidence"]["not_judged"] == NOT_JUDGED[switch]
    # The verdicts that could be judged are the full run's.
    unjudged = set(NOT_JUDGED[switch])
    given = [v for v in off["verdicts"] if v != "healthy"]
    assert given == [v for v in full["verdicts"] if v not in unjudged | {"healthy"}]


def test_without_gradients_the_gradient_flow_is_unknown(
    runs: dict[str | None, RunOutput],
) -> None:
    flow = runs["gradients"].result["diagnosis"]["evidence"]["gradient_flow"]
    assert flow["first_to_last_rms_ratio"] is None and flow["max_grad_norm"] is None
    assert set(flow["median_rms_grad"].values()) == {None}


def test_without_activations_the_graph_runs_no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[int] = []
    real = trainer_module.CompiledTrainer._probe

    def counted(self: Any, x: Any) -> Any:
        probes.append(1)
        return real(self, x)

    monkeypatch.setattr(trainer_module.CompiledTrainer, "_probe", counted)
    # Shapes no other test uses, so the graph is traced here and not taken from the cache.
    shape = {"dataset": {"kind": "xor", "n_samples": 46}, "training": {"epochs": 2}}
    for every in ("epoch", "step"):
        payload = {**shape, "capture": {"activations": False, "every": every}}
        run_experiment(ExperimentSpec.model_validate(payload))
        assert probes == []
    run_experiment(ExperimentSpec.model_validate(shape))
    assert probes  # traced into the graph when activations are captured


def test_a_run_that_captures_nothing_still_diverges_by_its_loss() -> None:
    payload = {
        "seed": 11,
        "model": {
            "hidden_layers": [32] * 10,
            "activation": "relu",
            "initializer": {"kind": "random_normal", "stddev": 10},
        },
        "training": {"epochs": 5, "optimizer": {"kind": "sgd", "learning_rate": 1.0}},
        "capture": {"weights": False, "gradients": False, "activations": False, "raw": True},
    }
    output = run_experiment(ExperimentSpec.model_validate(payload))
    result = json.loads(dumps_result(output.result))
    assert result["diverged"] is True
    diagnosis = result["diagnosis"]
    assert diagnosis["verdicts"] == ["diverged"]
    assert set(diagnosis["evidence"]["not_judged"]) == {
        "vanishing",
        "exploding",
        "dead_units",
        "saturated",
    }
    diverged = diagnosis["evidence"]["diverged"]
    assert diverged["first_non_finite_epoch"] is not None
    assert diverged["gradients_blew_up"] is None  # unknown without gradients
    assert result["histograms"] is None
    assert set(result["tutorial"]) == {"epochs", "loss"}
    assert all(layer == {} for layer in result["series"].values())
    assert npz_names(output) == {"dataset/x", "dataset/y"}
    assert available_plots(result) == ["dataset", "boundary"]
