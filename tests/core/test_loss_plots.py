"""A regression's loss against its baseline, legible in a study's curves and in an
experiment's plot alike: a log axis, and the baseline's line labelled (core.plotting.loss)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from matplotlib.axes import Axes

from core.plotting.catalog import EXPERIMENT_PLOTS, STUDY_PLOTS
from core.plotting.study.series import study_series
from tests.core.result_samples import make_result
from tests.core.test_plots import all_text, decode

EPOCHS = 20
ADDING_BASELINE = 0.18  # the adding problem's: its loss starts near 5


def regression(seed: int, start: float, end: float, baseline: float = ADDING_BASELINE) -> Any:
    out = make_result(epochs=EPOCHS, seed=seed)
    out["history"]["loss"] = np.geomspace(start, end, EPOCHS).tolist()
    out["history"]["accuracy"] = [None] * EPOCHS
    out["metrics"]["baseline"] = {"loss": baseline}
    out["dataset"]["task"] = "regression"
    return out


def configs(*labels: str) -> list[dict[str, Any]]:
    return [{"index": i, "label": label, "values": {}} for i, label in enumerate(labels)]


def dashed(ax: Axes) -> list[Any]:
    return [line for line in ax.get_lines() if line.get_linestyle() == "--"]


def height_in_panel(ax: Axes, value: float) -> float:
    """Where `value` sits on the panel's y axis: 0 at its bottom, 1 at its top."""
    bottom = ax.transAxes.transform((0, 0))[1]
    top = ax.transAxes.transform((0, 1))[1]
    return float((ax.transData.transform((1, value))[1] - bottom) / (top - bottom))


def test_a_regression_study_draws_its_loss_on_a_log_axis_with_the_baseline_labelled() -> None:
    runs = [regression(0, 5.0, 0.01), regression(1, 4.0, 0.02), regression(2, 3.0, 0.15)]
    series = study_series(configs("lstm 32", "lstm 8", "simple rnn"), 1, iter(runs))
    figure = STUDY_PLOTS.build_figure("curves", series)
    (ax,) = figure.axes
    assert ax.get_yscale() == "log"
    # One grey line for the baseline all three share, named with its value.
    (line,) = dashed(ax)
    assert list(line.get_ydata()) == [ADDING_BASELINE, ADDING_BASELINE]
    assert "baseline: predict the mean (0.18)" in all_text(figure)
    # On a linear axis from 0 to 5 it sat at 4% of the panel; on a log one, well up in it.
    assert 0.25 < height_in_panel(ax, ADDING_BASELINE) < 0.75
    assert ax.get_ylim()[0] <= 0.01 and ax.get_ylim()[1] >= 5.0
    pixels = decode(STUDY_PLOTS.render("curves", series, width=640, height=480, dpi=80))
    assert pixels.shape == (480, 640, 3)


def test_configurations_on_different_data_each_draw_their_own_baseline() -> None:
    runs = [regression(0, 5.0, 0.05, baseline=0.18), regression(1, 2.0, 0.1, baseline=0.5)]
    series = study_series(configs("adding", "other"), 1, iter(runs))
    (ax,) = STUDY_PLOTS.build_figure("curves", series).axes
    assert ax.get_yscale() == "log"
    assert sorted(line.get_ydata()[0] for line in dashed(ax)) == [0.18, 0.5]
    colours = {line.get_color() for line in dashed(ax)}
    assert len(colours) == 2  # each in its configuration's colour


def test_a_classification_beside_a_regression_is_not_drawn_against_its_baseline() -> None:
    runs = [regression(0, 5.0, 0.05), make_result(epochs=EPOCHS, seed=1)]
    series = study_series(configs("adding", "moons"), 1, iter(runs))
    figure = STUDY_PLOTS.build_figure("curves", series)
    (line,) = dashed(figure.axes[0])
    assert list(line.get_ydata()) == [ADDING_BASELINE, ADDING_BASELINE]
    curves = [c for c in figure.axes[0].get_lines() if c.get_linestyle() != "--"]
    assert line.get_color() == curves[0].get_color()  # the regression's, not one for all
    assert "predict the mean" not in all_text(figure)  # no label that reads as everyone's


def test_a_classification_study_keeps_its_loss_and_accuracy_linear() -> None:
    runs = [make_result(epochs=EPOCHS, seed=seed) for seed in (0, 1)]
    series = study_series(configs("a", "b"), 1, iter(runs))
    figure = STUDY_PLOTS.build_figure("curves", series)
    assert [ax.get_yscale() for ax in figure.axes] == ["linear", "linear"]
    assert not any(dashed(ax) for ax in figure.axes)
    assert "baseline" not in all_text(figure)


@pytest.mark.parametrize("zero", [False, True])
def test_an_experiment_s_loss_panel_reads_the_baseline_as_a_study_s(zero: bool) -> None:
    """The same rule as the study's curves: log with a baseline, unless a loss of exactly
    0 would fall off the axis; the same labelled line either way."""
    result = regression(0, 5.0, 0.01)
    loss = np.geomspace(5.0, 0.01, EPOCHS)
    loss[-1] = 0.0 if zero else loss[-1]
    result["tutorial"]["loss"] = loss.tolist()
    figure = EXPERIMENT_PLOTS.build_figure("gradients", result)
    loss_ax = figure.axes[2]
    assert loss_ax.get_yscale() == ("linear" if zero else "log")
    (line,) = dashed(loss_ax)
    assert list(line.get_ydata()) == [ADDING_BASELINE, ADDING_BASELINE]
    assert "baseline: predict the mean (0.18)" in all_text(figure)
