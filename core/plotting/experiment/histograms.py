"""Small multiples of each layer's kernel gradient distribution at the snapshot epochs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from core.plotting.experiment.axes import Result, figure_legend, style_axes, suptitle
from core.plotting.experiment.layers import layer_colors, layer_names_of
from core.plotting.kinds import Need, PlotKind
from core.plotting.layout import Frame
from core.plotting.style import Color, Style, as_floats, note, snapshot_colors, spread_pick

MAX_HISTOGRAM_PANELS = 12  # beyond this the small multiples become unreadable


def _draw_histograms(figure: Figure, result: Result, style: Style) -> Frame:
    histograms = result["histograms"]
    all_names = _histogram_layers(result)
    names = spread_pick(all_names, MAX_HISTOGRAM_PANELS)
    epochs = list(histograms.get("epochs") or [])
    epoch_colors = snapshot_colors(len(epochs))
    title_colors = layer_colors(result)
    cols = _grid_columns(len(names), style)
    rows = math.ceil(len(names) / cols)
    grid = figure.subplots(rows, cols, squeeze=False)
    for index, ax in enumerate(grid.ravel()):
        if index >= len(names):
            ax.set_axis_off()
            continue
        name = names[index]
        widest = _plot_snapshots(ax, histograms[name]["gradients"], epoch_colors, style)
        # Each panel has its own x scale; the title gives it at a glance, so
        # layers whose gradients vanish stand out without reading tick labels.
        scale = "" if widest is None else f"  (|g| ≤ {widest:.1g})"
        style_axes(ax, style, title=name + scale)
        ax.title.set_color(title_colors.get(name, "#222222"))
        # Few x ticks: the panels are small and gradient values have long labels.
        ax.locator_params(axis="x", nbins=4)
        if widest is None:
            note(ax, "no finite histogram", style)
    handles = [Line2D([], [], color=color, linewidth=style.pt(1.8)) for color in epoch_colors]
    # Right of the grid, so that it does not collide with the shared x label.
    labels = _snapshot_labels(histograms)
    frame = figure_legend(figure, handles, labels, style, "epoch", right=True)
    frame.xlabel = figure.supxlabel("kernel gradient", fontsize=style.text)
    frame.ylabel = figure.supylabel("fraction of entries per bin", fontsize=style.text)
    title = "Kernel gradient distributions at snapshot epochs"
    if len(names) < len(all_names):
        title += f" ({len(names)} of {len(all_names)} layers)"
    frame.title = suptitle(figure, result, title, style)
    return frame


def _snapshot_labels(histograms: Mapping[str, Any]) -> list[str]:
    """The epoch of each snapshot; the one after training's last step says "end of"."""
    epochs = list(histograms.get("epochs") or [])
    at = list(histograms.get("at") or [])
    at += ["start"] * (len(epochs) - len(at))
    return [
        f"end of {epoch}" if when == "end" else f"{epoch}"
        for epoch, when in zip(epochs, at, strict=False)
    ]


def _histogram_layers(result: Result) -> list[str]:
    histograms = result.get("histograms") or {}
    return [
        name
        for name in layer_names_of(result)
        if isinstance(histograms.get(name), Mapping) and histograms[name].get("gradients")
    ]


def _grid_columns(count: int, style: Style) -> int:
    """Columns for `count` panels that keep each panel near the figure's shape."""
    aspect = 1.5 if style.landscape else 0.75
    return max(1, min(count, math.ceil(math.sqrt(count * aspect))))


def _plot_snapshots(
    ax: Axes, snapshots: Sequence[Any], colors: Sequence[Color], style: Style
) -> float | None:
    """One step line per snapshot, as the fraction of entries in each bin.

    Returns the largest |edge| drawn (the panel's gradient scale), None when
    no snapshot was finite.
    """
    widest: float | None = None
    for snapshot, color in zip(snapshots, colors, strict=False):
        edges, counts = as_floats(snapshot.get("edges")), as_floats(snapshot.get("counts"))
        total = np.nansum(counts)
        finite = np.isfinite(edges).all() and np.isfinite(counts).all()
        if not finite or total <= 0 or edges.size != counts.size + 1:
            continue
        ax.add_line(_step_outline(edges, counts / total, color, style))
        widest = max(widest or 0.0, float(np.abs(edges).max()))
    ax.autoscale_view()  # add_line, unlike plot, leaves the view limits to the caller
    return widest


def _step_outline(edges: np.ndarray, heights: np.ndarray, color: Color, style: Style) -> Line2D:
    """A histogram's outline from 0 up and back down, as `Axes.stairs` draws it.

    A plain line: `stairs` makes a patch, and adding a patch walks its path
    segment by segment for the data limits, most of a histogram panel's cost.
    """
    x = np.repeat(edges, 2)
    y = np.concatenate([[0.0], np.repeat(heights, 2), [0.0]])
    line = Line2D(
        x, y, color=color, linewidth=style.pt(1.3), solid_joinstyle="miter", solid_capstyle="butt"
    )
    line.sticky_edges.y.append(0.0)  # the bars stand on the axis, no margin under them
    return line


HISTOGRAMS = PlotKind(
    name="histograms",
    description="distribution of each layer's kernel gradients at the snapshot epochs",
    need=Need(
        lambda result: bool(_histogram_layers(result)), "gradient histograms were not captured"
    ),
    draw=_draw_histograms,
)
