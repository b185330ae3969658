"""A study's lines, one per configuration: gradients against depth, and the learning curves.

depth   per-layer gradient S.D. and norm against depth at initialization (the
        first step's gradient) and in the last epoch: Glorot & Bengio's view
        of where gradients vanish
curves  loss and accuracy over epochs, the band spanning the seeds; a regression's
        loss beside its baseline (predicting the mean target), dashed and labelled,
        on a log axis as an experiment's (core.plotting.loss)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from core.plotting.experiment import axes as experiment_axes
from core.plotting.kinds import Need, PlotKind
from core.plotting.layout import Frame
from core.plotting.loss import draw_baseline, loss_on_log_scale
from core.plotting.study.axes import (
    cell_size,
    config_colors,
    config_legend,
    finite_floats,
    log_y,
    style_axes,
    suptitle,
    tick_locator,
)
from core.plotting.study.series import any_config_has, captures_gradients
from core.plotting.style import Style


def _draw_depth(figure: Figure, series: Mapping[str, Any], style: Style) -> Frame:
    configs = [c for c in series["configs"] if c.get("depth")]
    colors = config_colors(len(configs))
    axes = figure.subplots(2, 2, sharex=True, sharey="row", squeeze=False)
    panels = (
        ("std_first", "std_last", "kernel gradient S.D."),
        ("norm_first", "norm_last", "kernel gradient norm"),
    )
    widest: list[str] = []
    for row, (first, last, ylabel) in enumerate(panels):
        for column, key in enumerate((first, last)):
            ax = axes[row][column]
            for config, color in zip(configs, colors, strict=True):
                depth = config["depth"]
                values = finite_floats(depth[key])
                x = np.arange(1, values.size + 1)
                ax.plot(x, np.where(values > 0, values, np.nan), color=color, marker="o",
                        markersize=style.pt(3.5), linewidth=style.pt(1.6))  # fmt: skip
                if len(depth["layers"]) > len(widest):
                    widest = list(depth["layers"])
            log_y(ax)
            when = "at initialization" if column == 0 else "last epoch"
            style_axes(ax, style, f"{ylabel}, {when}", ylabel="" if column else ylabel)
    for ax in axes[1]:
        ax.set_xlabel("layer (input side to output)", fontsize=style.pt(9.0))
        if len(widest) <= 12:
            ax.set_xticks(range(1, len(widest) + 1), widest, rotation=30, ha="right")
        else:
            across = 0.8 * cell_size(ax, style)[0]
            ax.xaxis.set_major_locator(tick_locator(across, style, across=True, integer=True))
    return Frame(
        title=suptitle(figure, "Gradients by depth", len(configs), len(configs), style),
        bottom=config_legend(figure, configs, colors, style),
    )


def _draw_curves(figure: Figure, series: Mapping[str, Any], style: Style) -> Frame:
    configs = [c for c in series["configs"] if c["curves"]["loss"]["mean"]]
    colors = config_colors(len(configs))
    # A regression (adding) has no accuracy: its loss alone, on the whole figure.
    scored = any(
        any(value is not None for value in c["curves"]["accuracy"]["mean"]) for c in configs
    )
    metrics = ("loss", "accuracy") if scored else ("loss",)
    rows, cols = (1, len(metrics)) if style.landscape else (len(metrics), 1)
    axes = figure.subplots(rows, cols, sharex=True, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=True):
        drawn: list[np.ndarray] = []
        for config, color in zip(configs, colors, strict=True):
            band = config["curves"][metric]
            mean = finite_floats(band["mean"])
            epochs = np.arange(1, mean.size + 1)
            ax.plot(epochs, mean, color=color, linewidth=style.pt(1.6))
            drawn.append(mean)
            if config["runs"] > 1:
                low, high = finite_floats(band["min"]), finite_floats(band["max"])
                ax.fill_between(epochs, low, high, color=color, alpha=0.18, linewidth=0)
                drawn += [low, high]
        baselines = _baselines(configs) if metric == "loss" else []
        band_note = " (band: min to max over seeds)" if _seeded(configs) else ""
        baseline_note = "; dashed: predicting the mean" if any(baselines) else ""
        title = f"training {metric}{band_note}{baseline_note}"
        style_axes(ax, style, title, xlabel="epoch", ylabel=metric)
        # About 0.8 of a cell is panel, the rest its labels.
        across, up = (0.8 * size for size in cell_size(ax, style))
        ax.xaxis.set_major_locator(tick_locator(across, style, across=True, integer=True))
        ax.yaxis.set_major_locator(tick_locator(up, style, across=False))
        _draw_baselines(ax, baselines, colors, drawn, style)
    return Frame(
        title=suptitle(figure, "Learning curves", len(configs), len(configs), style),
        bottom=config_legend(figure, configs, colors, style),
    )


def _baselines(configs: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """Each configuration's baseline loss; None for a classification's, and for a series
    stored before baselines were kept."""
    return [
        float(b) if isinstance(b := c.get("baseline_loss"), int | float) else None for c in configs
    ]


def _draw_baselines(
    ax: Axes,
    baselines: Sequence[float | None],
    colors: Sequence[str],
    drawn: Sequence[np.ndarray],
    style: Style,
) -> None:
    """A regression's baseline beside its loss, on a log axis where both are legible: one
    grey labelled line when every configuration shares it (one dataset), else one dashed
    line in each regression's colour (a classification beside them has none)."""
    known = [b for b in baselines if b is not None]
    if not known:
        return
    if len(known) == len(baselines) and len(set(known)) == 1:
        draw_baseline(ax, known[0], style)
    else:
        for baseline, color in zip(baselines, colors, strict=True):
            if baseline is not None:
                draw_baseline(ax, baseline, style, color=color, label=False)
    if loss_on_log_scale(drawn, min(known)):
        experiment_axes.log_y(ax, style)  # labelled within a decade, as an experiment's


def _seeded(configs: Sequence[Mapping[str, Any]]) -> bool:
    return any(config["runs"] > 1 for config in configs)


def _has_curves(series: Mapping[str, Any]) -> bool:
    return any(c["curves"]["loss"]["mean"] for c in series.get("configs", []))


DEPTH = PlotKind(
    name="depth",
    description="per-layer gradient S.D. and norm against depth, one line per configuration, "
    "at initialization and in the last epoch (Glorot & Bengio's view)",
    need=Need(any_config_has("depth"), "no child captured gradients", planned=captures_gradients),
    draw=_draw_depth,
)

CURVES = PlotKind(
    name="curves",
    description="loss and accuracy over epochs, one line per configuration, bands over seeds",
    need=Need(_has_curves, "no child finished training", planned=lambda specs: True),
    draw=_draw_curves,
)
