"""One line per layer in one color per layer, the same in every plot of a run.

A series with thousands of points (capture every step) is drawn as its
envelope at a bucket per pixel; a layer past `MAX_LAYER_LEGEND` gets a colorbar
keyed by layer instead of a legend entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from core.plotting.experiment.axes import (
    Result,
    cell_width,
    figure_legend,
    has_finite,
    series_x,
    style_axes,
    style_colorbar,
)
from core.plotting.layout import Frame
from core.plotting.style import (
    LAYER_COLORMAP,
    Color,
    Style,
    as_floats,
    note,
    sample_colors,
    spread_pick,
)

MAX_LAYER_LEGEND = 12  # beyond this a colorbar keyed by layer replaces the legend


def layer_names_of(result: Result) -> list[str]:
    layers = result.get("layers") or []
    names = [str(layer["name"]) for layer in layers if "name" in layer]
    return names or list((result.get("series") or {}).keys())


def layer_colors(result: Result) -> dict[str, Color]:
    """One color per layer of the run from one colormap, the same in every plot of it
    (keyed by all its layers, whichever a plot shows)."""
    names = layer_names_of(result)
    return dict(zip(names, sample_colors(LAYER_COLORMAP, len(names)), strict=True))


def positive_only(values: np.ndarray) -> np.ndarray:
    """Values for a log axis: zero and negative become gaps."""
    return np.where(values > 0, values, np.nan)


def layer_panel(
    ax: Axes,
    x: np.ndarray,
    series: Mapping[str, Any],
    colors: Mapping[str, Color],
    style: Style,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    empty: str = "no finite values",
) -> set[str]:
    """A titled panel of one line per layer in its color, and the note `empty` in it
    when no layer has a finite value; the names of the layers drawn."""
    drawn: set[str] = set()
    for name, raw in series.items():
        values = as_floats(raw)
        if not has_finite(values):
            continue
        line_x = series_x(x, values)
        # A pixel column never needs more than the lowest and the highest of
        # the points it covers, and a panel is narrower than its grid cell.
        shown_x, shown = _envelope(line_x, values, round(cell_width(ax)))
        ax.plot(shown_x, shown, color=colors[name], linewidth=style.line, label=name)
        # A line draws nothing for a value with gaps on both sides: mark it.
        lonely = _isolated(values)
        if lonely.any():
            ax.plot(
                line_x[lonely], values[lonely], "o", markersize=style.pt(2.5), color=colors[name]
            )
        drawn.add(name)
    style_axes(ax, style, title=title, xlabel=xlabel, ylabel=ylabel)
    if not drawn:
        note(ax, empty, style)
    return drawn


def _envelope(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most two points per bucket of neighbours: each bucket's lowest and highest, in order.

    Drawn at a bucket per pixel it looks the same as every point, for a
    fraction of the drawing. A series with gaps (non-finite values) is kept
    whole, so that its gaps stay where they are.
    """
    if y.size <= 2 * buckets or not np.isfinite(y).all():
        return x, y
    size = math.ceil(y.size / buckets)
    count = math.ceil(y.size / size)
    padded = np.concatenate([y, np.full(count * size - y.size, y[-1])]).reshape(count, size)
    lowest, highest = padded.argmin(axis=1), padded.argmax(axis=1)
    offsets = np.arange(count)[:, None] * size
    picks = offsets + np.sort(np.stack([lowest, highest], axis=1), axis=1)
    keep = np.unique(np.concatenate([[0], picks.ravel(), [y.size - 1]]).clip(0, y.size - 1))
    return x[keep], y[keep]


def _isolated(values: np.ndarray) -> np.ndarray:
    """Finite values whose neighbours are both missing (or off the ends)."""
    finite = np.isfinite(values)
    padded = np.pad(finite, 1, constant_values=False)
    return finite & ~padded[:-2] & ~padded[2:]


def layer_legend(
    figure: Figure,
    names: Sequence[str],
    drawn: set[str],
    colors: Mapping[str, Color],
    style: Style,
) -> Frame:
    """The figure's legend by layer; a layer with nothing to draw says so.

    Past `MAX_LAYER_LEGEND` layers a legend would crowd out the plot, so a
    colorbar keyed by layer (the same colors) stands in for it.
    """
    if len(names) > MAX_LAYER_LEGEND:
        return _layer_colorbar(figure, names, colors, style)
    labels = [name if name in drawn else f"{name} (no finite values)" for name in names]
    return figure_legend(figure, _layer_handles(colors, names, style), labels, style, "layer")


def _layer_colorbar(
    figure: Figure, names: Sequence[str], colors: Mapping[str, Color], style: Style
) -> Frame:
    """A bar of the layer colors under the panels (right of them in portrait)."""
    mappable = ScalarMappable(
        norm=BoundaryNorm(np.arange(len(names) + 1) - 0.5, len(names)),
        cmap=ListedColormap([colors[name] for name in names]),
    )
    ticked = spread_pick(list(range(len(names))), 8)
    cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
    colorbar = figure.colorbar(
        mappable,
        cax=cax,
        orientation="horizontal" if style.landscape else "vertical",
        ticks=ticked,
    )
    colorbar.set_ticklabels([names[index] for index in ticked])
    style_colorbar(colorbar, "layer", style)
    bar = style.pt(8.0)
    return Frame(bottom=cax, bar=bar) if style.landscape else Frame(right=cax, bar=bar)


def _layer_handles(colors: Mapping[str, Color], names: Sequence[str], style: Style) -> list[Line2D]:
    return [Line2D([], [], color=colors[name], linewidth=style.pt(1.8)) for name in names]
