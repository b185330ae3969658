"""The frame of a run's plots: axes, ticks, titles and legends in one look.

Tick counts come from the figure's size and grid, never from an Axes' current
size, so the tick labels measured for the layout (`core.plotting.layout`) are
the ones drawn; log axes are labelled in plain text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Literal

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.markers import TICKLEFT, MarkerStyle
from matplotlib.text import Text
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

from core.plotting.figure import panel_grid
from core.plotting.layout import Frame, InViewLocator, InViewLogLocator
from core.plotting.style import PlainLogFormatter, Style, as_floats, shape_text

Result = Mapping[str, Any]


def capture_epochs(result: Result) -> tuple[np.ndarray, str]:
    """The x of each capture point in epochs, and its axis label.

    Per-step capture becomes fractional epochs (step k of n in epoch e sits at
    e - 1 + k / n), so every plot of a run shares an axis in epochs.
    """
    return point_epochs(result.get("capture") or {})


def point_epochs(capture: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    """`capture_epochs` of capture points given by their `epoch` and `step` lists, and
    `every` ("epoch" or "step")."""
    epochs = as_floats(capture.get("epoch"))
    if capture.get("every") != "step" or epochs.size == 0:
        return epochs, "epoch"
    steps = as_floats(capture.get("step"))
    unique, inverse, counts = np.unique(epochs, return_inverse=True, return_counts=True)
    first_step = np.full(unique.size, np.inf)
    np.minimum.at(first_step, inverse, steps)
    rank = steps - first_step[inverse]
    return epochs - 1 + (rank + 1) / counts[inverse], "epoch (captured every step)"


def series_x(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """x for a series, falling back to 1..n when the lengths disagree."""
    return x if x.size == values.size else np.arange(1, values.size + 1, dtype=np.float64)


def span_x(ax: Axes, x: np.ndarray, style: Style) -> None:
    """Show the whole run of epochs on x, so a diverged run shows where its numbers stop."""
    ax.xaxis.set_major_locator(tick_locator(ax, "x", style, integer=True))
    finite = x[np.isfinite(x)]
    if finite.size > 1 and finite.max() > finite.min():
        pad = 0.02 * float(finite.max() - finite.min())
        ax.set_xlim(float(finite.min()) - pad, float(finite.max()) + pad)


def has_finite(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).any())


def style_axes(ax: Axes, style: Style, *, title: str, xlabel: str = "", ylabel: str = "") -> None:
    # An explicit y keeps matplotlib from measuring the x axis at every draw
    # to lift the title over top tick labels, which these plots never have.
    ax.set_title(title, fontsize=style.title, pad=style.pt(5.0), y=1.0)
    ax.set_xlabel(xlabel, fontsize=style.text, labelpad=style.pt(3.0))
    ax.set_ylabel(ylabel, fontsize=style.text, labelpad=style.pt(3.0))
    if getattr(ax, _FRAMED, None) != style:  # not a panel of shared_x_panels' template
        frame_axes(ax, style)
    ax.xaxis.set_major_locator(tick_locator(ax, "x", style))
    ax.yaxis.set_major_locator(tick_locator(ax, "y", style))


_FRAMED = "_gradwatch_framed_for"  # the Style whose frame_axes an Axes already has


def frame_axes(ax: Axes, style: Style) -> None:
    """What `style_axes` gives an Axes whatever its text: tick sizes and grid lines."""
    style_ticks(ax, style)
    ax.grid(True, color="#e6e6e6", linewidth=style.pt(0.6))
    ax.set_axisbelow(True)
    setattr(ax, _FRAMED, style)


def tick_locator(
    ax: Axes, axis: Literal["x", "y"], style: Style, *, integer: bool = False
) -> MaxNLocator:
    """Round-number ticks, as many as the panel's share of the figure has room for.

    The count comes from the figure's size and grid, never from the Axes'
    current size, so the tick labels measured for the layout are the ones drawn.
    """
    rows, cols = _grid_shape(ax)
    if axis == "x":  # labels side by side: one per ~4 label heights
        bins = style.width_pt / cols / (4.0 * style.small)
    else:
        bins = style.height_pt / rows / (5.0 * style.small)
    return InViewLocator(nbins=max(2, min(int(bins), 9)), steps=[1, 2, 2.5, 5, 10], integer=integer)


def cell_width(ax: Axes) -> float:
    """Pixels across the panel's grid cell, an upper bound of its width."""
    figure = ax.get_figure(root=True)
    assert figure is not None
    return float(figure.bbox.width) / _grid_shape(ax)[1]


def _grid_shape(ax: Axes) -> tuple[int, int]:
    spec = ax.get_subplotspec()
    return (1, 1) if spec is None else spec.get_gridspec().get_geometry()


def log_y(ax: Axes, style: Style) -> None:
    """A log y axis: a label per decade, and unlabelled ticks at 2..9 of each.

    Call it once the data is plotted. A decade spans several tick marks but
    matplotlib makes each minor tick a full tick (lines and labels), most of
    a log panel's cost; when no minor tick needs a label they are drawn as
    one line of tick markers instead, which looks the same.
    """
    ax.set_yscale("log")
    rows, _ = _grid_shape(ax)
    numticks = max(3, min(int(style.height_pt / rows / (4.0 * style.small)), 9))
    ax.yaxis.set_major_locator(InViewLogLocator(numticks=numticks))
    ax.yaxis.set_major_formatter(PlainLogFormatter())
    minor = LogLocator(subs="auto", numticks=numticks)
    low, high = sorted(ax.get_ylim())
    if math.log10(high / low) < 1.0:
        # Within about a decade some minor ticks carry labels (2 times 10⁻³): real ticks.
        ax.yaxis.set_minor_locator(minor)
        ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))
        style_ticks(ax, style, minor=True)
        return
    ax.yaxis.set_minor_locator(NullLocator())
    marks = [value for value in minor.tick_values(low, high) if low <= value <= high]
    ax.set_ylim(low, high)  # the marks are not data: keep them out of autoscaling
    ax.add_line(
        Line2D(
            np.zeros(len(marks)),
            marks,
            transform=ax.get_yaxis_transform(),
            linestyle="none",
            marker=MarkerStyle(TICKLEFT),
            markersize=style.pt(2.0),
            markeredgewidth=style.pt(0.8),
            color=matplotlib.rcParams["ytick.color"],
            clip_on=False,
        )
    )


def style_ticks(ax: Axes, style: Style, *, minor: bool = False) -> None:
    """Tick sizes for this figure; `minor` only where minor ticks are drawn.

    Styling minor ticks makes matplotlib build one (a tick costs about as much
    as a line and two texts), so axes without minor ticks leave them alone.
    """
    ticks: dict[str, Any] = {"labelsize": style.small, "width": style.pt(0.8), "pad": style.pt(3.0)}
    ax.tick_params(which="major", length=style.pt(3.5), **ticks)
    if minor:
        ax.tick_params(which="minor", length=style.pt(2.0), **ticks)
    for spine in ax.spines.values():
        spine.set_linewidth(style.pt(0.8))


def style_colorbar(colorbar: Colorbar, label: str, style: Style) -> None:
    colorbar.set_label(label, fontsize=style.text, labelpad=style.pt(3.0))
    colorbar.outline.set_linewidth(style.pt(0.8))
    style_ticks(colorbar.ax, style)


def shared_x_panels(figure: Figure, count: int, style: Style) -> list[Axes]:
    """`count` panels sharing x: side by side in landscape, stacked in portrait, 2 x 2 for 4."""
    if count == 4:
        rows, cols = 2, 2
    else:
        rows, cols = (1, count) if style.landscape else (count, 1)
    # Copied from a template made once per size and count, panels framed and with
    # their ticks made: building them was about a third of the tutorial's plots.
    framing = partial(frame_axes, style=style)
    grid = panel_grid(figure, rows, cols, sharex=True, prepare=framing, key=("framed", style))
    return list(grid.ravel())


def suptitle(figure: Figure, result: Result, title: str, style: Style) -> Text:
    about = run_label(result)
    if result.get("diverged"):
        about += " — diverged: gaps are non-finite values"
    text = f"{title} — {about}"
    # ~0.5 em per character: wrap rather than run off a narrow figure.
    if len(text) * 0.5 * style.title > 0.95 * style.width_pt:
        text = f"{title}\n{about}"
    return figure.suptitle(text, fontsize=style.title)


MAX_LABEL_LAYERS = 6  # a longer layer list is labelled by its ends


def run_label(result: Result) -> str:
    """e.g. "circles, 2-5-5-5-1 sigmoid"; a deep net as "2-64-…-64-1 (20 hidden)"; a
    layer list by class, as "digits 8x8x1, Conv2D 8, MaxPooling2D, Flatten → 10 softmax"."""
    dataset = result.get("dataset") or {}
    layers = result.get("layers") or []
    if ((result.get("spec") or {}).get("model") or {}).get("layers"):
        return _layer_list_label(dataset, layers)
    widths = [str(dataset.get("n_features", "?"))] + [
        str(layer.get("units", "?")) for layer in layers
    ]
    if len(widths) > 8:
        widths = [*widths[:2], "…", *widths[-2:], f"({len(layers) - 1} hidden)"]
        shape = "-".join(widths[:-1]) + " " + widths[-1]
    else:
        shape = "-".join(widths)
    hidden = {layer.get("activation") for layer in layers if layer.get("name") != "output"}
    activation = hidden.pop() if len(hidden) == 1 else "mixed activations"
    return f"{dataset.get('name') or dataset.get('kind', 'data')}, {shape} {activation}"


def _layer_list_label(dataset: Mapping[str, Any], layers: Sequence[Mapping[str, Any]]) -> str:
    """A layer list's run: its data and input shape, its layers by class (units or
    filters where they have weights), and its output."""
    shape = shape_text(dataset.get("sample_shape") or [])
    about = f"{dataset.get('kind', 'data')} {shape}".strip()
    hidden = [layer for layer in layers if layer.get("name") != "output"]
    parts: list[str] = []
    block = ""
    for layer in hidden:
        name = str(layer.get("name", ""))
        part = str(layer.get("class_name", "?"))
        if layer.get("kernel_size") is not None:
            part += f" {layer.get('units', '?')}"
        inside = name.split(".")[0] if "." in name else ""
        if inside and inside == block:
            parts[-1] = parts[-1][:-1] + f", {part}]"
        elif inside:
            parts.append(f"Residual[{part}]")
        else:
            parts.append(part)
        block = inside
    if len(parts) > MAX_LABEL_LAYERS:
        parts = [*parts[:2], "…", *parts[-2:], f"({len(hidden)} layers)"]
    output = next((layer for layer in layers if layer.get("name") == "output"), None)
    tail = "" if output is None else f" → {output.get('units', '?')} {output.get('activation', '')}"
    return ", ".join([about, *parts]) + tail.rstrip()


def figure_legend(
    figure: Figure,
    handles: Sequence[Artist],
    labels: Sequence[str],
    style: Style,
    title: str,
    *,
    right: bool = False,
) -> Frame:
    """One legend for the whole figure, below in landscape and right of it in portrait."""
    if not handles:
        return Frame()
    loc: Literal["lower center", "center right"]
    if style.landscape and not right:
        # An entry is a handle, padding and column spacing (~5.5 em), ~0.6 em per character.
        entry_pt = style.small * (5.5 + 0.6 * max(len(label) for label in labels))
        loc, ncols = "lower center", max(1, int(style.width_pt // entry_pt))
    else:
        loc, ncols = "center right", math.ceil(len(handles) / 16)
    legend = figure.legend(
        handles,
        labels,
        loc=loc,
        ncols=min(len(handles), ncols),
        fontsize=style.small,
        title=title,
        title_fontsize=style.small,
        frameon=False,
        borderaxespad=0.0,  # the layout keeps it off the edge
    )
    return Frame(bottom=legend) if loc == "lower center" else Frame(right=legend)


def label_bottom_row_only(figure: Figure) -> None:
    """Panels stacked on a shared x axis need its label once, at the bottom."""
    for ax in figure.axes:
        spec = ax.get_subplotspec()
        shared = len(ax.get_shared_x_axes().get_siblings(ax)) > 1
        if spec is not None and shared and not spec.is_last_row():
            ax.set_xlabel("")
