"""The frame of a study's plots: one color per configuration, ticks, titles and the legend."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from core.plotting.canvas import shared_renderer
from core.plotting.layout import InViewLocator, InViewLogLocator
from core.plotting.style import Style, as_floats, power_of_ten

MAX_PANELS = 16  # heatmaps or surfaces in one figure; past this they are unreadable


def config_colors(count: int) -> list[str]:
    """Distinct colors per configuration: tab10, tab20, then a sampled colormap."""
    if count <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [to_hex(cmap(i)) for i in range(count)]
    if count <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [to_hex(cmap(i)) for i in range(count)]
    cmap = matplotlib.colormaps["turbo"]
    return [to_hex(cmap(p)) for p in np.linspace(0.05, 0.95, count)]


def style_axes(
    ax: Axes, style: Style, title: str, xlabel: str = "", ylabel: str = "", *, grid: bool = True
) -> None:
    style_frame(ax, style, title)
    ax.set_xlabel(xlabel, fontsize=style.pt(9.0), labelpad=style.pt(2.0))
    ax.set_ylabel(ylabel, fontsize=style.pt(9.0), labelpad=style.pt(2.0))
    # Major ticks only: no axis here draws minor ones, and styling them builds them.
    ax.tick_params(
        which="major",
        labelsize=style.pt(8.0),
        width=style.pt(0.8),
        pad=style.pt(2.0),
        length=style.pt(3.5),
    )
    if grid:
        ax.grid(True, color="#e6e6e6", linewidth=style.pt(0.6))
        ax.set_axisbelow(True)


def style_frame(ax: Axes, style: Style, title: str) -> None:
    """A panel's title and spines; all a panel without ticks needs (styling ticks builds them)."""
    # An explicit y keeps matplotlib from measuring the x axis at every draw
    # to lift the title over top tick labels, which these plots never have.
    ax.set_title(title, fontsize=style.pt(10.0), pad=style.pt(4.0), y=1.0)
    for spine in ax.spines.values():
        spine.set_linewidth(style.pt(0.8))


def tick_locator(
    span_pt: float, style: Style, *, across: bool, integer: bool = False
) -> MaxNLocator:
    """Round-number ticks, as many as matplotlib's default gives an axis `span_pt` long.

    matplotlib's AutoLocator counts them from the Axes' current length, which
    the layout changes after measuring the tick labels; this counts them from
    the length the panel will roughly have (one label per 3 label heights
    across, per 2 up, as AutoLocator does), so the tick labels measured are
    the ones drawn.
    """
    bins = span_pt / ((3.0 if across else 2.0) * style.pt(8.0))
    return InViewLocator(nbins=max(1, min(int(bins), 9)), steps=[1, 2, 2.5, 5, 10], integer=integer)


def cell_size(ax: Axes, style: Style, *, reserved: float = 0.0) -> tuple[float, float]:
    """Points across and up a panel's grid cell, `reserved` points of the width
    going to something beside the grid."""
    spec = ax.get_subplotspec()
    rows, columns = (1, 1) if spec is None else spec.get_gridspec().get_geometry()
    return (style.width_pt - reserved) / columns, style.height_pt / rows


def wrapped(figure: Figure, label: str, width_pt: float, size_pt: float) -> str:
    """`label` broken after its commas where a line would be wider than `width_pt`.

    Measured with the renderer that draws it: at small sizes hinting makes
    text wider for its size than at large ones.
    """
    renderer = shared_renderer(int(figure.bbox.width), int(figure.bbox.height), figure.dpi)
    font = FontProperties(size=size_pt)

    def fits(line: str) -> bool:
        width, _, _ = renderer.get_text_width_height_descent(line, font, False)
        return width * 72 / figure.dpi <= width_pt

    lines: list[str] = []
    for part in label.split(", "):
        if lines and fits(f"{lines[-1]}, {part}"):
            lines[-1] += ", " + part
            continue
        if lines:
            lines[-1] += ","
        name, equals, value = part.partition("=")
        if equals and not fits(part + ","):
            # Too wide even alone (hidden_layers=5-5-5-5-5): its value goes below its name.
            lines += [name + equals, value]
        else:
            lines.append(part)
    return "\n".join(lines)


def suptitle(figure: Figure, title: str, shown: int, total: int, style: Style) -> Text:
    if shown < total:
        title += f" (first {shown} of {total} configurations)"
    return figure.suptitle(title, fontsize=style.pt(11.0))


def config_legend(
    figure: Figure, configs: Sequence[Mapping[str, Any]], colors: Sequence[str], style: Style
) -> Legend:
    """The legend by configuration, under the panels."""
    handles = [Line2D([], [], color=color, linewidth=style.pt(2.0)) for color in colors]
    labels = [str(config["label"]) for config in configs]
    longest = max((len(label) for label in labels), default=1)
    columns = max(1, int(style.width_pt // (style.pt(8.0) * (5.0 + 0.6 * longest))))
    return figure.legend(
        handles,
        labels,
        loc="lower center",
        ncols=min(len(handles), columns),
        fontsize=style.pt(8.0),
        frameon=False,
        borderaxespad=0.0,  # the layout keeps it off the edge
    )


def log_y(ax: Axes) -> None:
    """A log y axis labelled at powers of ten, without minor ticks."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(InViewLogLocator(base=10.0, numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(power_of_ten))
    ax.yaxis.set_minor_locator(NullLocator())


def finite_floats(values: Any) -> np.ndarray:
    return as_floats([math.nan if v is None else v for v in values or []])


def panel_grid(figure: Figure, count: int, *, aspect: float) -> list[Axes]:
    """`count` panels in the grid that leaves fewest cells empty, then whose cells are
    closest to `aspect` (width to height)."""
    width, height = figure.get_size_inches()

    def cost(columns: int) -> tuple[int, float]:
        rows = math.ceil(count / columns)
        shape = (width / columns) / (height / rows)
        return rows * columns - count, abs(math.log(shape / aspect))

    columns = min(range(1, count + 1), key=cost)
    rows = math.ceil(count / columns)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        figure.delaxes(ax)  # the layout keeps its cell empty
    return list(axes[:count])


def grid_columns(axes: Sequence[Axes]) -> int:
    spec = axes[0].get_subplotspec() if axes else None
    return 1 if spec is None else spec.get_gridspec().ncols
