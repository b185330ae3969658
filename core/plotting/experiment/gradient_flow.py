"""Gradient flow: a heatmap of log10 kernel gradient norm, layer by capture point."""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from core.plotting.experiment.axes import (
    Result,
    capture_epochs,
    style_axes,
    style_colorbar,
    suptitle,
    tick_locator,
)
from core.plotting.experiment.layers import layer_names_of
from core.plotting.kinds import Need, PlotKind
from core.plotting.layout import Frame
from core.plotting.style import HEATMAP_COLORMAP, MISSING_COLOR, Style, as_floats, note


def _draw_gradient_flow(figure: Figure, result: Result, style: Style) -> Frame:
    kernels = _kernel_rows(result)
    names = [name for name, _ in kernels]
    x, xlabel = capture_epochs(result)
    rows = [as_floats(values) for _, values in kernels]
    width = max((row.size for row in rows), default=0)
    norms = np.full((len(names), width), np.nan)
    for index, row in enumerate(rows):
        norms[index, : row.size] = row
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.ma.masked_invalid(np.log10(np.where(norms > 0, norms, np.nan)))
    ax = figure.subplots()
    title = "log10 of each layer's kernel gradient norm"
    if len(kernels) > len(_gradient_layers(result)):
        title += " (and recurrent kernel's)"
    style_axes(ax, style, title=title, xlabel=xlabel)
    ax.grid(False)
    frame = Frame(title=suptitle(figure, result, "Gradient flow", style))
    if logs.count() == 0:
        note(ax, "no finite gradient norms", style)
    else:
        cmap = matplotlib.colormaps[HEATMAP_COLORMAP].with_extremes(bad=MISSING_COLOR)
        image = ax.imshow(
            # The panel is narrower than the figure: more columns than that
            # only make the resampler average them, at a cost that grows
            # with their number.
            bin_columns(logs, round(figure.bbox.width)),
            aspect="auto",
            cmap=cmap,
            interpolation="antialiased",
            extent=(
                *column_extent(x if x.size == width else np.arange(1.0, width + 1)),
                len(names) - 0.5,
                -0.5,
            ),
        )
        cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
        colorbar = figure.colorbar(image, cax=cax)
        colorbar.locator = tick_locator(ax, "y", style)
        style_colorbar(colorbar, "log10 ‖∇W‖ (grey: zero or not finite)", style)
        ax.xaxis.set_major_locator(tick_locator(ax, "x", style, integer=True))
        frame.right, frame.bar, frame.bar_gap = cax, style.pt(14.0), style.pt(18.0)
    ax.set_yticks(range(len(names)), names, fontsize=style.small)
    return frame


def bin_columns(values: np.ma.MaskedArray, most: int) -> np.ma.MaskedArray:
    """The means of runs of neighbouring columns, at most `most` of them.

    Runs differ by at most one column in length, so a column moves by under
    one original column's width; a run with no value stays masked.
    """
    columns = values.shape[1]
    if columns <= most:
        return values
    starts = np.linspace(0, columns, most + 1).astype(int)[:-1]
    present = ~np.ma.getmaskarray(values)
    totals = np.add.reduceat(np.where(present, values.filled(0.0), 0.0), starts, axis=1)
    counts = np.add.reduceat(present.astype(np.int64), starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.ma.masked_where(counts == 0, totals / counts)


def _gradient_layers(result: Result) -> list[str]:
    series = result.get("series") or {}
    return [
        name
        for name in layer_names_of(result)
        if (series.get(name) or {}).get("kernel", {}).get("grad_norm") is not None
    ]


def _kernel_rows(result: Result) -> list[tuple[str, Any]]:
    """(row label, gradient norms) per kernel, input side first: each layer's kernel,
    and a recurrent layer's recurrent kernel under it ("lstm_1 recurrent")."""
    series = result.get("series") or {}
    rows: list[tuple[str, Any]] = []
    for name in _gradient_layers(result):
        rows.append((name, series[name]["kernel"]["grad_norm"]))
        recurrent = (series[name].get("recurrent_kernel") or {}).get("grad_norm")
        if recurrent is not None:
            rows.append((f"{name} recurrent", recurrent))
    return rows


def column_extent(x: np.ndarray) -> tuple[float, float]:
    """Left and right edges of heatmap columns centered on the capture points."""
    if x.size == 0:
        return 0.0, 1.0
    step = float(x[1] - x[0]) if x.size > 1 else 1.0
    return float(x[0]) - step / 2, float(x[-1]) + step / 2


GRADIENT_FLOW = PlotKind(
    name="gradient_flow",
    description="heatmap of log10 kernel gradient norm, layer by capture point",
    need=Need(lambda result: bool(_gradient_layers(result)), "gradients were not captured"),
    draw=_draw_gradient_flow,
)
