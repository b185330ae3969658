"""Every plot of a run of a layer list: the presets beyond the MLP (a regression LSTM, a
classification LSTM, a small convolutional network) trained small by the engine, and the
through-time and per-channel plots drawn from their numbers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from matplotlib.lines import Line2D

from core.engine.run import run_experiment
from core.experiment.presets import preset
from core.experiment.result import dumps_result
from core.experiment.spec import ExperimentSpec
from core.plotting.catalog import EXPERIMENT_PLOTS, STUDY_PLOTS, available_plots, render_plot
from core.plotting.kinds import PlotUnavailableError
from core.plotting.study.series import study_series
from tests.core.result_samples import make_result
from tests.core.test_plots import all_text, decode

PRESETS = ("lstm-adding", "lstm-recall", "conv-digits")
EVERY_RUN_HAS = {"dataset", "weights", "gradients", "gradient_flow", "activations", "histograms"}
build_figure = EXPERIMENT_PLOTS.build_figure


def small_run(name: str) -> dict[str, Any]:
    """The preset's network trained briefly on a smaller task, as a client reads it."""
    spec = json.loads(json.dumps(preset(name).spec))
    if "sequence_length" in spec["dataset"]:
        spec["dataset"] = {**spec["dataset"], "sequence_length": 12, "n_samples": 64}
    spec["training"] = {**spec["training"], "epochs": 2}
    result = run_experiment(ExperimentSpec.model_validate(spec)).result
    loaded: dict[str, Any] = json.loads(dumps_result(result))
    return loaded


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, Any]]:
    return {name: small_run(name) for name in PRESETS}


def plotted_lines(ax: Any) -> list[Line2D]:
    return [line for line in ax.get_lines() if not str(line.get_label()).startswith("_")]


@pytest.mark.parametrize("name", PRESETS)
def test_every_plot_of_a_preset_renders_at_every_size(
    runs: dict[str, dict[str, Any]], name: str
) -> None:
    result = runs[name]
    names = available_plots(result)
    assert set(names) >= EVERY_RUN_HAS
    assert ("through_time" in names) == name.startswith("lstm")
    assert ("channels" in names) == name.startswith("conv")
    for plot in names:
        for width, height, dpi in ((900, 600, 100), (320, 240, 72), (500, 800, 150)):
            pixels = decode(render_plot(plot, result, width=width, height=height, dpi=dpi))
            assert pixels.shape == (height, width, 3), (plot, width, height)


def test_layers_are_named_by_class_and_position_as_the_result_names_them(
    runs: dict[str, dict[str, Any]],
) -> None:
    conv = build_figure("gradient_flow", runs["conv-digits"])
    rows = [label.get_text() for label in conv.axes[0].get_yticklabels()]
    assert rows == ["conv2d_1", "conv2d_2", "dense_5", "output"]
    shape = "digits 8\N{MULTIPLICATION SIGN}8\N{MULTIPLICATION SIGN}1"
    assert f"{shape}, Conv2D 8, Conv2D 8, MaxPooling2D, Flatten, Dense 32 → 10 softmax" in (
        all_text(conv)
    )
    recurrent = build_figure("gradient_flow", runs["lstm-recall"]).axes[0]
    rows = [label.get_text() for label in recurrent.get_yticklabels()]
    assert rows == ["lstm_1", "lstm_1 recurrent", "output"]
    weights = build_figure("weights", runs["lstm-adding"])
    assert "LSTM 32 → 1 linear" in all_text(weights)
    assert {line.get_label() for line in plotted_lines(weights.axes[0])} == {"lstm_1", "output"}


def test_a_regression_reads_its_loss_against_the_baseline_where_classes_have_a_legend(
    runs: dict[str, dict[str, Any]],
) -> None:
    adding = runs["lstm-adding"]
    baseline = adding["metrics"]["baseline"]["loss"]
    loss_ax = build_figure("gradients", adding).axes[2]
    assert loss_ax.get_title() == "training loss (MSE)"
    assert any(np.allclose(line.get_ydata(), baseline) for line in loss_ax.get_lines())
    assert "baseline: predict the mean" in all_text(loss_ax.get_figure())
    dataset = build_figure("dataset", adding)
    assert dataset.axes[0].get_legend() is None and "target" in all_text(dataset)
    recall = build_figure("dataset", runs["lstm-recall"])
    assert recall.axes[0].get_legend() is not None  # classes, as an MLP's
    assert "training loss (MSE)" not in all_text(build_figure("gradients", runs["lstm-recall"]))


def test_the_through_time_plot_draws_the_results_own_norms(
    runs: dict[str, dict[str, Any]],
) -> None:
    result = runs["lstm-recall"]
    norms = np.array(result["through_time"]["lstm_1"]["gradient_norm"], dtype=np.float64)
    figure = build_figure("through_time", result)
    heat, decay = figure.axes[0], figure.axes[1]
    assert heat.get_title().startswith("lstm_1")
    drawn = np.ma.asarray(heat.get_images()[0].get_array())
    np.testing.assert_allclose(drawn, np.log10(norms), rtol=1e-6)
    first, last = plotted_lines(decay)
    np.testing.assert_allclose(first.get_ydata(), norms[0] / norms[0, -1], rtol=1e-6)
    np.testing.assert_allclose(last.get_ydata(), norms[-1] / norms[-1, -1], rtol=1e-6)
    assert "epoch 1" in str(first.get_label()) and "epoch 2" in str(last.get_label())


@pytest.mark.parametrize(
    ("plot", "other", "without", "why"),
    [
        ("through_time", "conv-digits", {"timesteps": 0}, "no recurrent layer"),
        ("channels", "lstm-recall", {"filters": 0}, "no convolution"),
    ],
)
def test_a_norm_plot_is_unavailable_without_its_layers_and_says_why(
    runs: dict[str, dict[str, Any]], plot: str, other: str, without: dict[str, int], why: str
) -> None:
    for result in (runs[other], make_result(**without)):
        assert plot not in available_plots(result)
        with pytest.raises(PlotUnavailableError, match=why):
            render_plot(plot, result)


def test_the_channels_plot_draws_the_results_own_norms(
    runs: dict[str, dict[str, Any]],
) -> None:
    result = runs["conv-digits"]
    figure = build_figure("channels", result)
    for column, name in enumerate(["conv2d_1", "conv2d_2"]):
        norms = np.array(result["channels"][name]["gradient_norm"], dtype=np.float64)
        heat, profile = figure.axes[column], figure.axes[2 + column]
        assert heat.get_title().startswith(name)
        drawn = np.ma.asarray(heat.get_images()[0].get_array())
        np.testing.assert_allclose(drawn, np.log10(norms), rtol=1e-6)
        first, last = plotted_lines(profile)
        np.testing.assert_allclose(first.get_ydata(), norms[0] / np.median(norms[0]), rtol=1e-6)
        np.testing.assert_allclose(last.get_ydata(), norms[-1] / np.median(norms[-1]), rtol=1e-6)
        assert "epoch 1" in str(first.get_label()) and "epoch 2" in str(last.get_label())
        assert profile.get_title() == "÷ the layer's median"  # no filter is quiet


def test_a_dead_filter_is_grey_and_counted_as_quiet() -> None:
    result = make_result(filters=6)
    norms = np.array(result["channels"]["hidden_2"]["gradient_norm"], dtype=np.float64)
    assert (norms[:, 0] == 0).all() and (norms[:, 1:] > 0).all()
    figure = build_figure("channels", result)
    heat, profile = figure.axes[0], figure.axes[1]
    drawn = np.ma.asarray(heat.get_images()[0].get_array())
    assert np.ma.getmaskarray(drawn)[:, 0].all() and not np.ma.getmaskarray(drawn)[:, 1:].any()
    assert profile.get_title() == "1 of 6 quiet at the last point"
    assert "grey: zero" in all_text(figure)


@pytest.mark.parametrize("dead", [4, 5, 6])
def test_most_filters_dead_are_all_counted_and_the_rest_drawn(dead: int) -> None:
    # The median is the living filters': were the zeros in it, a layer whose filters are
    # mostly dead would have a median of 0 and nothing to draw or count.
    result = make_result(filters=6)
    for row in result["channels"]["hidden_2"]["gradient_norm"]:
        row[:dead] = [0.0] * dead
    figure = build_figure("channels", result)
    profile = figure.axes[1]
    assert profile.get_title() == f"{dead} of 6 quiet at the last point"
    drawn = [line for line in plotted_lines(profile) if np.isfinite(line.get_ydata()).any()]
    assert len(drawn) == (2 if dead < 6 else 0)


def test_recurrent_layers_side_by_side_share_one_color_scale() -> None:
    result = make_result()
    entry = result["through_time"]["hidden_1"]
    result["through_time"]["hidden_2"] = {
        **entry,
        "gradient_norm": [[100 * value for value in row] for row in entry["gradient_norm"]],
    }
    figure = build_figure("through_time", result)
    images = [ax.get_images()[0] for ax in figure.axes if ax.get_images()]
    assert len(images) == 2
    assert images[0].norm.vmin == images[1].norm.vmin and images[0].norm.vmax == images[1].norm.vmax
    assert images[1].norm.vmax - images[0].norm.vmin > 2  # two decades apart, on one scale


@pytest.mark.parametrize("name", PRESETS)
def test_every_study_plot_of_a_presets_runs_renders(
    runs: dict[str, dict[str, Any]], name: str
) -> None:
    configs = [{"index": index, "label": f"seed={index}", "values": {}} for index in (0, 1)]
    series = study_series(configs, 1, [runs[name], runs[name]])
    names = STUDY_PLOTS.available(series)
    assert {"depth", "curves", "gradient_flow"} <= set(names)
    for plot in names:
        pixels = decode(STUDY_PLOTS.render(plot, series, width=640, height=480, dpi=80))
        assert pixels.shape == (480, 640, 3), plot
    curves = STUDY_PLOTS.build_figure("curves", series)
    titles = [ax.get_title() for ax in curves.axes]
    # A regression has no accuracy to draw: its loss alone, beside its baseline.
    if name == "lstm-adding":
        assert titles == ["training loss; dashed: predicting the mean"]
        baseline = runs[name]["metrics"]["baseline"]["loss"]
        assert [c["baseline_loss"] for c in series["configs"]] == [baseline, baseline]
        # One labelled line for the baseline both share, on the log axis a regression's takes.
        dashed = [line for line in curves.axes[0].get_lines() if line.get_linestyle() == "--"]
        assert [line.get_ydata()[0] for line in dashed] == [baseline]
        assert curves.axes[0].get_yscale() == "log" and "predict the mean" in all_text(curves)
    else:
        assert titles == ["training loss", "training accuracy"]
        assert [c["baseline_loss"] for c in series["configs"]] == [None, None]
