"""The tutorial's own two plots: kernel weights and kernel gradients per layer over epochs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from core.plotting.experiment.axes import (
    Result,
    has_finite,
    log_y,
    series_x,
    shared_x_panels,
    span_x,
    style_axes,
    suptitle,
)
from core.plotting.experiment.layers import (
    layer_colors,
    layer_legend,
    layer_names_of,
    layer_panel,
    positive_only,
)
from core.plotting.kinds import Drawer, Need, PlotKind
from core.plotting.layout import Frame
from core.plotting.loss import draw_baseline, loss_on_log_scale
from core.plotting.style import Color, Style, as_floats, note


def _draw_weights(figure: Figure, result: Result, style: Style) -> Frame:
    tutorial = result["tutorial"]
    weights = tutorial["weights"]
    x = as_floats(tutorial.get("epochs"))
    names = [name for name in layer_names_of(result) if name in weights]
    colors = layer_colors(result)
    mean_ax, std_ax = shared_x_panels(figure, 2, style)
    drawn_anywhere: set[str] = set()
    for ax, key, title in (
        (mean_ax, "mean", "mean of kernel weights"),
        (std_ax, "std", "S.D. of kernel weights"),
    ):
        series = {name: weights[name].get(key) for name in names}
        ylabel = title.split(" of ")[0]
        drawn_anywhere |= layer_panel(
            ax, x, series, colors, style, title=title, xlabel="epoch", ylabel=ylabel
        )
    span_x(mean_ax, x, style)
    frame = layer_legend(figure, names, drawn_anywhere, colors, style)
    frame.title = suptitle(figure, result, "Weights per layer over epochs", style)
    return frame


def _draw_gradients(figure: Figure, result: Result, style: Style) -> Frame:
    tutorial = result["tutorial"]
    gradients = tutorial.get("gradients") or {}
    epochs = as_floats(tutorial.get("epochs"))
    x = epochs[1:] if epochs.size else epochs  # taken at the first step of epochs 1..E
    names = [name for name in layer_names_of(result) if name in gradients]
    colors = layer_colors(result)
    mean_ax, std_ax, loss_ax = shared_x_panels(figure, 3, style)
    means = {name: gradients[name].get("mean") for name in names}
    stds = {name: as_floats(gradients[name].get("std")) for name in names}
    drawn = _draw_gradient_means(mean_ax, x, means, colors, style)
    drawn |= _draw_gradient_spread(std_ax, x, stds, colors, style)
    loss = as_floats(tutorial.get("loss") or (result.get("history") or {}).get("loss"))
    regression = (result.get("dataset") or {}).get("task") == "regression"
    _draw_loss(loss_ax, x, loss, style, title="training loss (MSE)" if regression else "")
    if regression:
        _draw_baseline(loss_ax, result, loss, style)
    frame = layer_legend(figure, names, drawn, colors, style)
    frame.title = suptitle(figure, result, "Gradients per layer over epochs", style)
    return frame


def _draw_gradient_means(
    ax: Axes, x: np.ndarray, means: Mapping[str, Any], colors: Mapping[str, Color], style: Style
) -> set[str]:
    title = "mean of kernel gradients"
    drawn = layer_panel(ax, x, means, colors, style, title=title, xlabel="epoch", ylabel="mean")
    if drawn:
        ax.axhline(0.0, color="#888888", linewidth=style.pt(0.6))
    return drawn


def _draw_gradient_spread(
    ax: Axes,
    x: np.ndarray,
    stds: Mapping[str, np.ndarray],
    colors: Mapping[str, Color],
    style: Style,
) -> set[str]:
    """S.D. on a log axis, where vanishing shows as layers decades apart."""
    positive = {name: positive_only(values) for name, values in stds.items()}
    title, empty = "S.D. of kernel gradients", "no positive finite values"
    drawn = layer_panel(
        ax, x, positive, colors, style, title=title, xlabel="epoch", ylabel="S.D.", empty=empty
    )
    if not drawn:
        return drawn
    log_y(ax, style)
    if any((values == 0).any() for values in stds.values()):
        # Zero gradients (dead units) leave gaps on a log axis: say so.
        ax.text(
            0.02,
            0.02,
            "zeros not shown (log scale)",
            transform=ax.transAxes,
            fontsize=style.small,
            color="#555555",
        )
    return drawn


def _draw_loss(ax: Axes, x: np.ndarray, loss: np.ndarray, style: Style, *, title: str) -> None:
    style_axes(ax, style, title=title or "training loss", xlabel="epoch", ylabel="loss")
    if has_finite(loss):
        ax.plot(series_x(x, loss), loss, color="#222222", linewidth=style.line)
    else:
        note(ax, "no finite loss", style)
    span_x(ax, x, style)


def _draw_baseline(ax: Axes, result: Result, loss: np.ndarray, style: Style) -> None:
    """A regression's loss beside what predicting the targets' mean scores (its baseline),
    on a log axis where both are legible (core.plotting.loss)."""
    baseline = ((result.get("metrics") or {}).get("baseline") or {}).get("loss")
    if not isinstance(baseline, int | float):
        return
    draw_baseline(ax, baseline, style)
    if loss_on_log_scale([loss], baseline):
        log_y(ax, style)


def _tutorial_kind(name: str, description: str, draw: Drawer) -> PlotKind:
    """One of the tutorial's own figures, which a client fetches first: drawn as a job ends,
    from the result's `tutorial[name]`."""

    def captured(result: Result) -> bool:
        return bool((result.get("tutorial") or {}).get(name))

    need = Need(captured, f"{name} were not captured")
    return PlotKind(name=name, description=description, need=need, draw=draw, eager=True)


WEIGHTS = _tutorial_kind(
    "weights",
    "mean and S.D. of each layer's kernel weights over epochs (the tutorial's plot)",
    _draw_weights,
)
GRADIENTS = _tutorial_kind(
    "gradients",
    "mean and S.D. (log scale) of each layer's kernel gradients, and the loss",
    _draw_gradients,
)
