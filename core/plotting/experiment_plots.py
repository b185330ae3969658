"""Plots of one run, drawn from the numbers in its result alone.

Every plot reads only the result dict (the `result.json` layout in
`core.experiment.result`), never a model or TensorFlow, so any size can be rendered on
demand long after the run. Rendering uses matplotlib's object API on an Agg
canvas (no pyplot, no rcParams changes) and returns PNG bytes of exactly the
asked pixel size; the same result and size always give the same bytes.

A worker renders every plot when a job ends, so rendering is kept fast: the
panels sit in fixed margins measured once (`core.plotting.layout`) rather than
under a layout engine, ticks have explicit counts and plain-text labels, and
the canvas reuses its renderer and rasterized text (`core.plotting.canvas`).

Example:
    >>> names = available_plots(result)
    >>> png = render_plot("gradients", result, width=900, height=600, dpi=100)
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.colors import (
    BoundaryNorm,
    Colormap,
    LinearSegmentedColormap,
    ListedColormap,
    to_hex,
)
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.markers import TICKLEFT, MarkerStyle
from matplotlib.text import Text
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator, NullLocator

from core.plotting.canvas import render_png, shared_renderer
from core.plotting.layout import Frame, InViewLocator, InViewLogLocator, arrange

Result = Mapping[str, Any]
T = TypeVar("T")
Color = str

PLOT_NAMES: tuple[str, ...] = (
    "dataset",
    "weights",
    "gradients",
    "gradient_flow",
    "activations",
    "histograms",
    "boundary",
)

PLOT_DESCRIPTIONS: Mapping[str, str] = {
    "dataset": "the training data as a scatter, colored by class (PCA projection past 2 features)",
    "weights": "mean and S.D. of each layer's kernel weights over epochs (the tutorial's plot)",
    "gradients": "mean and S.D. (log scale) of each layer's kernel gradients, and the loss",
    "gradient_flow": "heatmap of log10 kernel gradient norm, layer by capture point",
    "activations": "saturated, dead or always-negative units, and activation mean and S.D.",
    "histograms": "distribution of each layer's kernel gradients at the snapshot epochs",
    "boundary": "the trained network's decision surface with the data on top (2-D data)",
}

LAYER_COLORMAP = "viridis"
SNAPSHOT_COLORMAP = "plasma"
HEATMAP_COLORMAP = "magma"
MAX_HISTOGRAM_PANELS = 12  # beyond this the small multiples become unreadable
MAX_LAYER_LEGEND = 12  # beyond this a colorbar keyed by layer replaces the legend
MISSING_COLOR = "#d0d0d0"


class PlotSize:
    """Bounds and defaults for a rendered plot: pixels and dots per inch."""

    MIN_WIDTH = 160
    MAX_WIDTH = 3200
    MIN_HEIGHT = 120
    MAX_HEIGHT = 2400
    MIN_DPI = 50
    MAX_DPI = 300
    WIDTH = 900
    HEIGHT = 600
    DPI = 100


class UnknownPlotError(KeyError):
    """A plot name that is not one of `PLOT_NAMES`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown plot {name!r}; choose one of {', '.join(PLOT_NAMES)}")
        self.name = name

    def __str__(self) -> str:
        # KeyError would quote the whole message; show it as written.
        return str(self.args[0])


class PlotUnavailableError(ValueError):
    """A known plot that this result has no numbers for (e.g. no boundary)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"plot {name!r} is not available for this result: {_MISSING_DATA[name]}")
        self.name = name


class PlotSizeError(ValueError):
    """A width, height or dpi outside `PlotSize`; names the parameter and its limit."""

    def __init__(self, parameter: str, message: str, limit: int | None = None) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.limit = limit


# Matplotlib documents itself as not thread-safe: its font cache (FT2Font
# objects) is process-wide, and so are the renderer and rasterized text that
# `core.plotting.canvas` keeps between renders. Text is also measured outside
# `draw` (the layout, legends). Building and drawing is Python holding the GIL
# anyway (two threads without the lock were no faster than with it), so one
# module lock around a whole build and draw costs no throughput and makes
# concurrent renders safe and byte-identical to serial ones.
_RENDER_LOCK = threading.Lock()


def available_plots(result: Result) -> list[str]:
    """The plots this result has numbers for, in `PLOT_NAMES` order."""
    return [name for name in PLOT_NAMES if _HAS_DATA[name](result)]


def render_plot(
    name: str,
    result: Result,
    *,
    width: int = PlotSize.WIDTH,
    height: int = PlotSize.HEIGHT,
    dpi: int = PlotSize.DPI,
) -> bytes:
    """A PNG of plot `name` for `result`, exactly `width` x `height` pixels.

    Raises:
        UnknownPlotError (a KeyError): `name` is not in `PLOT_NAMES`.
        PlotSizeError (a ValueError): a size is outside `PlotSize`.
        PlotUnavailableError (a ValueError): the result lacks the plot's numbers.
    """
    with _RENDER_LOCK:
        # Not savefig: it would read rcParams such as savefig.bbox="tight",
        # which changes the pixel size.
        return render_png(_build_figure(name, result, width=width, height=height, dpi=dpi))


def build_figure(
    name: str,
    result: Result,
    *,
    width: int = PlotSize.WIDTH,
    height: int = PlotSize.HEIGHT,
    dpi: int = PlotSize.DPI,
) -> Figure:
    """The matplotlib Figure behind `render_plot`, for other formats or inspection.

    Draw it from one thread at a time; `render_plot` is the thread-safe entry.
    """
    with _RENDER_LOCK:
        figure = _build_figure(name, result, width=width, height=height, dpi=dpi)
    # Its own canvas, so that drawing it later never touches the shared renderer.
    FigureCanvasAgg(figure)
    return figure


def _build_figure(name: str, result: Result, *, width: int, height: int, dpi: int) -> Figure:
    """`build_figure` for a caller that holds `_RENDER_LOCK`."""
    if name not in _DRAWERS:
        raise UnknownPlotError(name)
    check_plot_size(width=width, height=height, dpi=dpi)
    if not _HAS_DATA[name](result):
        raise PlotUnavailableError(name)
    style = _Style.for_size(width, height, dpi)
    figure = Figure(figsize=(figure_inches(width, dpi), figure_inches(height, dpi)), dpi=dpi)
    frame = _DRAWERS[name](figure, result, style)
    _label_bottom_row_only(figure)
    # Text is measured with the renderer that will draw it, so the measures
    # are cached for the draw (and for the next figure of this size).
    renderer = shared_renderer(width, height, dpi)
    arrange(figure, frame, renderer, pad=style.pt(4.0), gap=style.pt(5.0))
    return figure


def _label_bottom_row_only(figure: Figure) -> None:
    """Panels stacked on a shared x axis need its label once, at the bottom."""
    for ax in figure.axes:
        spec = ax.get_subplotspec()
        shared = len(ax.get_shared_x_axes().get_siblings(ax)) > 1
        if spec is not None and shared and not spec.is_last_row():
            ax.set_xlabel("")


def check_plot_size(*, width: int, height: int, dpi: int) -> None:
    """Refuse a size outside `PlotSize` with a PlotSizeError naming the parameter."""
    for parameter, value, low, high in (
        ("width", width, PlotSize.MIN_WIDTH, PlotSize.MAX_WIDTH),
        ("height", height, PlotSize.MIN_HEIGHT, PlotSize.MAX_HEIGHT),
        ("dpi", dpi, PlotSize.MIN_DPI, PlotSize.MAX_DPI),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise PlotSizeError(parameter, f"must be an integer, got {value!r}")
        if value < low:
            raise PlotSizeError(parameter, f"{value} is below the minimum of {low}", low)
        if value > high:
            raise PlotSizeError(parameter, f"{value} is above the maximum of {high}", high)


def figure_inches(pixels: int, dpi: int) -> float:
    """The smallest figure size in inches that Agg turns into exactly `pixels`.

    Agg truncates `inches * dpi` to an int, and `pixels / dpi * dpi` can land a
    hair below `pixels` (201 / 50 * 50 == 200.99999999999997).
    """
    inches = pixels / dpi
    while inches * dpi < pixels:
        inches = math.nextafter(inches, math.inf)
    return inches


# ----------------------------------------------------------------------- shared parts


@dataclass(frozen=True)
class _Style:
    """Sizes in points for one render.

    dpi keeps matplotlib's meaning (more dots per inch, larger text and lines
    at the same pixel size) while the figure's short side is at least
    `FULL_SIZE_PT`; below that every size shrinks with the figure, so a
    thumbnail is a small copy of the full plot rather than a broken layout.
    """

    FULL_SIZE_PT = 400.0

    scale: float
    width_pt: float
    height_pt: float
    landscape: bool

    @classmethod
    def for_size(cls, width: int, height: int, dpi: int) -> _Style:
        width_pt, height_pt = width / dpi * 72, height / dpi * 72
        scale = min(1.0, min(width_pt, height_pt) / cls.FULL_SIZE_PT)
        return cls(scale=scale, width_pt=width_pt, height_pt=height_pt, landscape=width >= height)

    def pt(self, size: float) -> float:
        """A size in points at full scale, scaled for this figure."""
        return size * self.scale

    @property
    def text(self) -> float:
        return self.pt(10.0)

    @property
    def small(self) -> float:
        return self.pt(8.5)

    @property
    def title(self) -> float:
        return self.pt(11.0)

    @property
    def line(self) -> float:
        return self.pt(1.6)


def _values(values: Any) -> np.ndarray:
    """Floats with every None (a stored non-finite number) as NaN."""
    if values is None:
        return np.array([], dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def _layer_names(result: Result) -> list[str]:
    layers = result.get("layers") or []
    names = [str(layer["name"]) for layer in layers if "name" in layer]
    return names or list((result.get("series") or {}).keys())


def _layer_colors(names: Sequence[str]) -> dict[str, Color]:
    """One color per layer from one colormap, the same in every plot of a run."""
    return dict(zip(names, _sample_colors(LAYER_COLORMAP, len(names)), strict=True))


def _sample_colors(colormap: str, count: int) -> list[Color]:
    # The top of viridis and plasma is a yellow that vanishes on white.
    cmap = matplotlib.colormaps[colormap]
    positions = np.linspace(0.0, 0.85, count) if count > 1 else np.zeros(count)
    return [to_hex(cmap(position)) for position in positions]


def _class_colors(count: int) -> list[Color]:
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [to_hex(cmap(index % cmap.N)) for index in range(count)]


def _capture_epochs(result: Result) -> tuple[np.ndarray, str]:
    """The x of each capture point in epochs, and its axis label.

    Per-step capture becomes fractional epochs (step k of n in epoch e sits at
    e - 1 + k / n), so every plot of a run shares an axis in epochs.
    """
    capture = result.get("capture") or {}
    epochs = _values(capture.get("epoch"))
    if capture.get("every") != "step" or epochs.size == 0:
        return epochs, "epoch"
    steps = _values(capture.get("step"))
    unique, inverse, counts = np.unique(epochs, return_inverse=True, return_counts=True)
    first_step = np.full(unique.size, np.inf)
    np.minimum.at(first_step, inverse, steps)
    rank = steps - first_step[inverse]
    return epochs - 1 + (rank + 1) / counts[inverse], "epoch (captured every step)"


def _series_x(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """x for a series, falling back to 1..n when the lengths disagree."""
    return x if x.size == values.size else np.arange(1, values.size + 1, dtype=np.float64)


def _span_x(ax: Axes, x: np.ndarray, style: _Style) -> None:
    """Show the whole run of epochs on x, so a diverged run shows where its numbers stop."""
    ax.xaxis.set_major_locator(_locator(ax, "x", style, integer=True))
    finite = x[np.isfinite(x)]
    if finite.size > 1 and finite.max() > finite.min():
        pad = 0.02 * float(finite.max() - finite.min())
        ax.set_xlim(float(finite.min()) - pad, float(finite.max()) + pad)


def _has_finite(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).any())


def _note(ax: Axes, text: str, style: _Style) -> None:
    """A centered note in an axes that has nothing to show."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=style.text,
        color="#555555",
        wrap=True,
    )


def _style_axes(ax: Axes, style: _Style, *, title: str, xlabel: str = "", ylabel: str = "") -> None:
    # An explicit y keeps matplotlib from measuring the x axis at every draw
    # to lift the title over top tick labels, which these plots never have.
    ax.set_title(title, fontsize=style.title, pad=style.pt(5.0), y=1.0)
    ax.set_xlabel(xlabel, fontsize=style.text, labelpad=style.pt(3.0))
    ax.set_ylabel(ylabel, fontsize=style.text, labelpad=style.pt(3.0))
    _style_ticks(ax, style)
    ax.xaxis.set_major_locator(_locator(ax, "x", style))
    ax.yaxis.set_major_locator(_locator(ax, "y", style))
    ax.grid(True, color="#e6e6e6", linewidth=style.pt(0.6))
    ax.set_axisbelow(True)


def _locator(
    ax: Axes, axis: Literal["x", "y"], style: _Style, *, integer: bool = False
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


def _cell_width(ax: Axes) -> float:
    """Pixels across the panel's grid cell, an upper bound of its width."""
    figure = ax.get_figure(root=True)
    assert figure is not None
    return float(figure.bbox.width) / _grid_shape(ax)[1]


def _grid_shape(ax: Axes) -> tuple[int, int]:
    spec = ax.get_subplotspec()
    return (1, 1) if spec is None else spec.get_gridspec().get_geometry()


def _log_y(ax: Axes, style: _Style) -> None:
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
    ax.yaxis.set_major_formatter(_PlainLogFormatter())
    minor = LogLocator(subs="auto", numticks=numticks)
    low, high = sorted(ax.get_ylim())
    if math.log10(high / low) < 1.0:
        # Within about a decade some minor ticks carry labels (2 times 10⁻³): real ticks.
        ax.yaxis.set_minor_locator(minor)
        ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))
        _style_ticks(ax, style, minor=True)
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


_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_MATHTEXT_LABEL = re.compile(r"\$\\mathdefault\{(.*)\}\$")
_MATHTEXT_POWER = re.compile(r"\^\{(-?\d+)\}")


class _PlainLogFormatter(LogFormatterSciNotation):
    """Log tick labels as plain text with Unicode superscripts, such as 10⁻³.

    matplotlib's own labels are mathtext, which runs a TeX-like parser for
    every label on every figure; Unicode superscripts look the same in
    DejaVu Sans and draw like any other text.
    """

    def __call__(self, x: float, pos: int | None = None) -> str:
        label = super().__call__(x, pos)
        math = _MATHTEXT_LABEL.fullmatch(label)
        if math is None:
            return label
        body = math.group(1).replace("\\times", "\N{MULTIPLICATION SIGN}")
        return _MATHTEXT_POWER.sub(lambda power: power.group(1).translate(_SUPERSCRIPTS), body)


def _style_ticks(ax: Axes, style: _Style, *, minor: bool = False) -> None:
    """Tick sizes for this figure; `minor` only where minor ticks are drawn.

    Styling minor ticks makes matplotlib build one (a tick costs about as much
    as a line and two texts), so axes without minor ticks leave them alone.
    """
    ax.tick_params(
        which="major",
        labelsize=style.small,
        width=style.pt(0.8),
        pad=style.pt(3.0),
        length=style.pt(3.5),
    )
    if minor:
        ax.tick_params(
            which="minor",
            labelsize=style.small,
            width=style.pt(0.8),
            pad=style.pt(3.0),
            length=style.pt(2.0),
        )
    for spine in ax.spines.values():
        spine.set_linewidth(style.pt(0.8))


def _style_colorbar(colorbar: Colorbar, label: str, style: _Style) -> None:
    colorbar.set_label(label, fontsize=style.text, labelpad=style.pt(3.0))
    colorbar.outline.set_linewidth(style.pt(0.8))
    _style_ticks(colorbar.ax, style)


def _panels(figure: Figure, count: int, style: _Style) -> list[Axes]:
    """`count` panels sharing x: side by side in landscape, stacked in portrait, 2 x 2 for 4."""
    if count == 4:
        rows, cols = 2, 2
    else:
        rows, cols = (1, count) if style.landscape else (count, 1)
    grid = figure.subplots(rows, cols, sharex=True, squeeze=False)
    return list(grid.ravel())


def _suptitle(figure: Figure, result: Result, title: str, style: _Style) -> Text:
    about = _run_label(result)
    if result.get("diverged"):
        about += " — diverged: gaps are non-finite values"
    text = f"{title} — {about}"
    # ~0.5 em per character: wrap rather than run off a narrow figure.
    if len(text) * 0.5 * style.title > 0.95 * style.width_pt:
        text = f"{title}\n{about}"
    return figure.suptitle(text, fontsize=style.title)


def _run_label(result: Result) -> str:
    """e.g. "circles, 2-5-5-5-1 sigmoid"; a deep net as "2-64-…-64-1 (20 hidden)"."""
    dataset = result.get("dataset") or {}
    layers = result.get("layers") or []
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
    return f"{dataset.get('kind', 'data')}, {shape} {activation}"


def _legend(
    figure: Figure,
    handles: Sequence[Artist],
    labels: Sequence[str],
    style: _Style,
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


def _layer_handles(
    colors: Mapping[str, Color], names: Sequence[str], style: _Style
) -> list[Line2D]:
    return [Line2D([], [], color=colors[name], linewidth=style.pt(1.8)) for name in names]


# ---------------------------------------------------------------------------- dataset


def _draw_dataset(figure: Figure, result: Result, style: _Style) -> Frame:
    dataset = result["dataset"]
    points = dataset["points"]
    x = _values(points["x"]).reshape(len(points["x"]), -1)
    if x.shape[1] == 1:
        x = np.column_stack([x[:, 0], np.zeros(len(x))])
    labels = np.asarray(points["y"], dtype=np.int64)
    ax = figure.subplots()
    _scatter_classes(ax, x, labels, _class_count(result, labels), style)
    pca = points.get("projection") == "pca"
    axis = "principal component" if pca else "feature"
    title = f"{len(labels)} training points"
    if pca:
        title += f", PCA projection of {dataset.get('n_features', '?')} features"
    _style_axes(ax, style, title=title, xlabel=f"{axis} 1", ylabel=f"{axis} 2")
    if not pca:
        ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=style.small, title="class", title_fontsize=style.small, markerscale=2)
    return Frame(title=figure.suptitle(f"Dataset — {_run_label(result)}", fontsize=style.title))


def _class_count(result: Result, labels: np.ndarray) -> int:
    declared = int((result.get("dataset") or {}).get("n_classes") or 0)
    return max(declared, int(labels.max()) + 1 if labels.size else 0, 1)


def _scatter_classes(
    ax: Axes, x: np.ndarray, labels: np.ndarray, classes: int, style: _Style, *, edge: bool = False
) -> None:
    colors = _class_colors(classes)
    size = float(np.clip(6000 / max(len(labels), 1), 3, 24)) * style.scale**2
    for label in np.unique(labels):
        chosen = labels == label
        ax.scatter(
            x[chosen, 0],
            x[chosen, 1],
            s=size,
            color=colors[int(label) % len(colors)],
            label=f"{label}",
            alpha=0.85,
            edgecolors="#222222" if edge else "none",
            linewidths=style.pt(0.3) if edge else 0.0,
        )


# ---------------------------------------------------------------------------- tutorial


def _draw_weights(figure: Figure, result: Result, style: _Style) -> Frame:
    tutorial = result["tutorial"]
    weights = tutorial["weights"]
    x = _values(tutorial.get("epochs"))
    names = [name for name in _layer_names(result) if name in weights]
    colors = _layer_colors(_layer_names(result))
    mean_ax, std_ax = _panels(figure, 2, style)
    drawn_anywhere: set[str] = set()
    for ax, key, title in (
        (mean_ax, "mean", "mean of kernel weights"),
        (std_ax, "std", "S.D. of kernel weights"),
    ):
        series = {name: weights[name].get(key) for name in names}
        drawn = _plot_layer_lines(ax, x, series, colors, style)
        _style_axes(ax, style, title=title, xlabel="epoch", ylabel=title.split(" of ")[0])
        if not drawn:
            _note(ax, "no finite values", style)
        drawn_anywhere |= drawn
    _span_x(mean_ax, x, style)
    frame = _layer_legend(figure, names, drawn_anywhere, colors, style)
    frame.title = _suptitle(figure, result, "Weights per layer over epochs", style)
    return frame


def _draw_gradients(figure: Figure, result: Result, style: _Style) -> Frame:
    tutorial = result["tutorial"]
    gradients = tutorial.get("gradients") or {}
    epochs = _values(tutorial.get("epochs"))
    x = epochs[1:] if epochs.size else epochs  # taken at the first step of epochs 1..E
    names = [name for name in _layer_names(result) if name in gradients]
    colors = _layer_colors(_layer_names(result))
    mean_ax, std_ax, loss_ax = _panels(figure, 3, style)
    means = {name: gradients[name].get("mean") for name in names}
    stds = {name: _values(gradients[name].get("std")) for name in names}
    drawn = _draw_gradient_means(mean_ax, x, means, colors, style)
    drawn |= _draw_gradient_spread(std_ax, x, stds, colors, style)
    loss = _values(tutorial.get("loss") or (result.get("history") or {}).get("loss"))
    _draw_loss(loss_ax, x, loss, style)
    frame = _layer_legend(figure, names, drawn, colors, style)
    frame.title = _suptitle(figure, result, "Gradients per layer over epochs", style)
    return frame


def _draw_gradient_means(
    ax: Axes, x: np.ndarray, means: Mapping[str, Any], colors: Mapping[str, Color], style: _Style
) -> set[str]:
    drawn = _plot_layer_lines(ax, x, means, colors, style)
    _style_axes(ax, style, title="mean of kernel gradients", xlabel="epoch", ylabel="mean")
    if drawn:
        ax.axhline(0.0, color="#888888", linewidth=style.pt(0.6))
    else:
        _note(ax, "no finite values", style)
    return drawn


def _draw_gradient_spread(
    ax: Axes,
    x: np.ndarray,
    stds: Mapping[str, np.ndarray],
    colors: Mapping[str, Color],
    style: _Style,
) -> set[str]:
    """S.D. on a log axis, where vanishing shows as layers decades apart."""
    positive = {name: _positive(values) for name, values in stds.items()}
    drawn = _plot_layer_lines(ax, x, positive, colors, style)
    _style_axes(ax, style, title="S.D. of kernel gradients", xlabel="epoch", ylabel="S.D.")
    if not drawn:
        _note(ax, "no positive finite values", style)
        return drawn
    _log_y(ax, style)
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


def _draw_loss(ax: Axes, x: np.ndarray, loss: np.ndarray, style: _Style) -> None:
    _style_axes(ax, style, title="training loss", xlabel="epoch", ylabel="loss")
    if _has_finite(loss):
        ax.plot(_series_x(x, loss), loss, color="#222222", linewidth=style.line)
    else:
        _note(ax, "no finite loss", style)
    _span_x(ax, x, style)


def _positive(values: np.ndarray) -> np.ndarray:
    """Values for a log axis: zero and negative become gaps."""
    return np.where(values > 0, values, np.nan)


def _plot_layer_lines(
    ax: Axes,
    x: np.ndarray,
    series: Mapping[str, Any],
    colors: Mapping[str, Color],
    style: _Style,
) -> set[str]:
    """One line per layer in its color; the names of the layers with a finite value."""
    drawn: set[str] = set()
    for name, raw in series.items():
        values = _values(raw)
        if not _has_finite(values):
            continue
        line_x = _series_x(x, values)
        # A pixel column never needs more than the lowest and the highest of
        # the points it covers, and a panel is narrower than its grid cell.
        shown_x, shown = _envelope(line_x, values, round(_cell_width(ax)))
        ax.plot(shown_x, shown, color=colors[name], linewidth=style.line, label=name)
        # A line draws nothing for a value with gaps on both sides: mark it.
        lonely = _isolated(values)
        if lonely.any():
            ax.plot(
                line_x[lonely], values[lonely], "o", markersize=style.pt(2.5), color=colors[name]
            )
        drawn.add(name)
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


def _layer_legend(
    figure: Figure,
    names: Sequence[str],
    drawn: set[str],
    colors: Mapping[str, Color],
    style: _Style,
) -> Frame:
    """The figure's legend by layer; a layer with nothing to draw says so.

    Past `MAX_LAYER_LEGEND` layers a legend would crowd out the plot, so a
    colorbar keyed by layer (the same colors) stands in for it.
    """
    if len(names) > MAX_LAYER_LEGEND:
        return _layer_colorbar(figure, names, colors, style)
    labels = [name if name in drawn else f"{name} (no finite values)" for name in names]
    return _legend(figure, _layer_handles(colors, names, style), labels, style, "layer")


def _layer_colorbar(
    figure: Figure, names: Sequence[str], colors: Mapping[str, Color], style: _Style
) -> Frame:
    """A bar of the layer colors under the panels (right of them in portrait)."""
    mappable = ScalarMappable(
        norm=BoundaryNorm(np.arange(len(names) + 1) - 0.5, len(names)),
        cmap=ListedColormap([colors[name] for name in names]),
    )
    ticked = _spread_pick(list(range(len(names))), 8)
    cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
    colorbar = figure.colorbar(
        mappable,
        cax=cax,
        orientation="horizontal" if style.landscape else "vertical",
        ticks=ticked,
    )
    colorbar.set_ticklabels([names[index] for index in ticked])
    _style_colorbar(colorbar, "layer", style)
    bar = style.pt(8.0)
    return Frame(bottom=cax, bar=bar) if style.landscape else Frame(right=cax, bar=bar)


# ---------------------------------------------------------------------- gradient flow


def _draw_gradient_flow(figure: Figure, result: Result, style: _Style) -> Frame:
    names = _gradient_layers(result)
    x, xlabel = _capture_epochs(result)
    series = result["series"]
    rows = [_values(series[name]["kernel"].get("grad_norm")) for name in names]
    width = max((row.size for row in rows), default=0)
    norms = np.full((len(names), width), np.nan)
    for index, row in enumerate(rows):
        norms[index, : row.size] = row
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.ma.masked_invalid(np.log10(np.where(norms > 0, norms, np.nan)))
    ax = figure.subplots()
    _style_axes(ax, style, title="log10 of each layer's kernel gradient norm", xlabel=xlabel)
    ax.grid(False)
    frame = Frame(title=_suptitle(figure, result, "Gradient flow", style))
    if logs.count() == 0:
        _note(ax, "no finite gradient norms", style)
    else:
        cmap = matplotlib.colormaps[HEATMAP_COLORMAP].with_extremes(bad=MISSING_COLOR)
        image = ax.imshow(
            # The panel is narrower than the figure: more columns than that
            # only make the resampler average them, at a cost that grows
            # with their number.
            _bin_columns(logs, round(figure.bbox.width)),
            aspect="auto",
            cmap=cmap,
            interpolation="antialiased",
            extent=(
                *_column_extent(x if x.size == width else np.arange(1.0, width + 1)),
                len(names) - 0.5,
                -0.5,
            ),
        )
        cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
        colorbar = figure.colorbar(image, cax=cax)
        colorbar.locator = _locator(ax, "y", style)
        _style_colorbar(colorbar, "log10 ‖∇W‖ (grey: zero or not finite)", style)
        ax.xaxis.set_major_locator(_locator(ax, "x", style, integer=True))
        frame.right, frame.bar, frame.bar_gap = cax, style.pt(14.0), style.pt(18.0)
    ax.set_yticks(range(len(names)), names, fontsize=style.small)
    return frame


def _bin_columns(values: np.ma.MaskedArray, most: int) -> np.ma.MaskedArray:
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
        for name in _layer_names(result)
        if (series.get(name) or {}).get("kernel", {}).get("grad_norm") is not None
    ]


def _column_extent(x: np.ndarray) -> tuple[float, float]:
    """Left and right edges of heatmap columns centered on the capture points."""
    if x.size == 0:
        return 0.0, 1.0
    step = float(x[1] - x[0]) if x.size > 1 else 1.0
    return float(x[0]) - step / 2, float(x[-1]) + step / 2


# ------------------------------------------------------------------------ activations


def _draw_activations(figure: Figure, result: Result, style: _Style) -> Frame:
    names = _activation_layers(result)
    activations = {name: result["series"][name]["activation"] for name in names}
    saturated = [name for name in names if activations[name].get("saturated") is not None]
    dead = [name for name in names if activations[name].get("dead") is not None]
    negative = [name for name in names if activations[name].get("negative") is not None]
    # Saturation and death exist for some activations only (units that are
    # negative everywhere still pass a gradient past relu); every layer has a
    # mean and a spread, and a spread that shrinks with depth is the signal dying.
    panels = [
        (key, title, ylabel, chosen)
        for key, title, ylabel, chosen in (
            ("saturated", "saturated units", "fraction of units saturated", saturated),
            ("dead", "dead units", "fraction of units dead", dead),
            ("negative", "units negative on every sample", "fraction of units", negative),
            ("mean", "activation mean", "mean", names),
            ("std", "activation S.D.", "S.D.", names),
        )
        if chosen
    ]
    x, xlabel = _capture_epochs(result)
    colors = _layer_colors(_layer_names(result))
    drawn_anywhere: set[str] = set()
    axes = _panels(figure, len(panels), style)
    for ax, (key, title, ylabel, chosen) in zip(axes, panels, strict=True):
        series = {name: activations[name].get(key) for name in chosen}
        drawn = _plot_layer_lines(ax, x, series, colors, style)
        if key in ("saturated", "dead", "negative"):
            ax.set_ylim(-0.03, 1.03)
        _style_axes(ax, style, title=title, xlabel=xlabel, ylabel=ylabel)
        if not drawn:
            _note(ax, "no finite values", style)
        drawn_anywhere |= drawn
        _span_x(ax, x, style)
    frame = _layer_legend(figure, names, drawn_anywhere, colors, style)
    frame.title = _suptitle(figure, result, "Activations on the probe batch", style)
    return frame


def _activation_layers(result: Result) -> list[str]:
    series = result.get("series") or {}
    return [
        name
        for name in _layer_names(result)
        if isinstance((series.get(name) or {}).get("activation"), Mapping)
    ]


# ------------------------------------------------------------------------- histograms


def _draw_histograms(figure: Figure, result: Result, style: _Style) -> Frame:
    histograms = result["histograms"]
    all_names = _histogram_layers(result)
    names = _spread_pick(all_names, MAX_HISTOGRAM_PANELS)
    epochs = list(histograms.get("epochs") or [])
    snapshot_colors = _sample_colors(SNAPSHOT_COLORMAP, len(epochs))
    layer_colors = _layer_colors(_layer_names(result))
    cols = _grid_columns(len(names), style)
    rows = math.ceil(len(names) / cols)
    grid = figure.subplots(rows, cols, squeeze=False)
    for index, ax in enumerate(grid.ravel()):
        if index >= len(names):
            ax.set_axis_off()
            continue
        name = names[index]
        widest = _plot_snapshots(ax, histograms[name]["gradients"], snapshot_colors, style)
        # Each panel has its own x scale; the title gives it at a glance, so
        # layers whose gradients vanish stand out without reading tick labels.
        scale = "" if widest is None else f"  (|g| ≤ {widest:.1g})"
        _style_axes(ax, style, title=name + scale)
        ax.title.set_color(layer_colors.get(name, "#222222"))
        # Few x ticks: the panels are small and gradient values have long labels.
        ax.locator_params(axis="x", nbins=4)
        if widest is None:
            _note(ax, "no finite histogram", style)
    handles = [Line2D([], [], color=color, linewidth=style.pt(1.8)) for color in snapshot_colors]
    # Right of the grid, so that it does not collide with the shared x label.
    labels = _snapshot_labels(histograms)
    frame = _legend(figure, handles, labels, style, "epoch", right=True)
    frame.xlabel = figure.supxlabel("kernel gradient", fontsize=style.text)
    frame.ylabel = figure.supylabel("fraction of entries per bin", fontsize=style.text)
    title = "Kernel gradient distributions at snapshot epochs"
    if len(names) < len(all_names):
        title += f" ({len(names)} of {len(all_names)} layers)"
    frame.title = _suptitle(figure, result, title, style)
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


def _spread_pick(names: Sequence[T], most: int) -> list[T]:
    """At most `most` names, evenly spread, always with the first and the last."""
    if len(names) <= most:
        return list(names)
    picks = np.unique(np.linspace(0, len(names) - 1, most).round().astype(int))
    return [names[index] for index in picks]


def _histogram_layers(result: Result) -> list[str]:
    histograms = result.get("histograms") or {}
    return [
        name
        for name in _layer_names(result)
        if isinstance(histograms.get(name), Mapping) and histograms[name].get("gradients")
    ]


def _grid_columns(count: int, style: _Style) -> int:
    """Columns for `count` panels that keep each panel near the figure's shape."""
    aspect = 1.5 if style.landscape else 0.75
    return max(1, min(count, math.ceil(math.sqrt(count * aspect))))


def _plot_snapshots(
    ax: Axes, snapshots: Sequence[Any], colors: Sequence[Color], style: _Style
) -> float | None:
    """One step line per snapshot, as the fraction of entries in each bin.

    Returns the largest |edge| drawn (the panel's gradient scale), None when
    no snapshot was finite.
    """
    widest: float | None = None
    for snapshot, color in zip(snapshots, colors, strict=False):
        edges, counts = _values(snapshot.get("edges")), _values(snapshot.get("counts"))
        total = np.nansum(counts)
        finite = np.isfinite(edges).all() and np.isfinite(counts).all()
        if not finite or total <= 0 or edges.size != counts.size + 1:
            continue
        ax.add_line(_step_outline(edges, counts / total, color, style))
        widest = max(widest or 0.0, float(np.abs(edges).max()))
    ax.autoscale_view()  # add_line, unlike plot, leaves the view limits to the caller
    return widest


def _step_outline(edges: np.ndarray, heights: np.ndarray, color: Color, style: _Style) -> Line2D:
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


# --------------------------------------------------------------------------- boundary


def _draw_boundary(figure: Figure, result: Result, style: _Style) -> Frame:
    boundary = result["boundary"]
    grid_x, grid_y = _values(boundary["x"]), _values(boundary["y"])
    surface = _values(boundary["z"])
    classes = int(boundary.get("classes") or 2)
    if surface.ndim == 3:  # per-class probabilities: show the predicted class
        surface = np.where(np.isfinite(surface).all(axis=2), np.nanargmax(surface, axis=2), np.nan)
    surface = np.ma.masked_invalid(surface)
    ax = figure.subplots()
    colors = _class_colors(classes)
    if surface.count() == 0:
        _note(ax, "no finite predictions", style)
    elif classes == 2:
        _binary_surface(figure, ax, grid_x, grid_y, surface, colors, style)
    else:
        cmap = ListedColormap(colors[:classes])
        levels = np.arange(classes + 1) - 0.5
        ax.contourf(grid_x, grid_y, surface, levels=levels, cmap=cmap, alpha=0.35)
    points = (result.get("dataset") or {}).get("points") or {}
    if points.get("projection", "raw") == "raw" and points.get("x"):
        x = _values(points["x"]).reshape(len(points["x"]), -1)
        labels = np.asarray(points["y"], dtype=np.int64)
        if x.shape[1] == 2:
            _scatter_classes(ax, x, labels, classes, style, edge=True)
            ax.legend(fontsize=style.small, title="class", title_fontsize=style.small)
    if np.isfinite(grid_x).all() and np.isfinite(grid_y).all():
        ax.set_xlim(float(grid_x[0]), float(grid_x[-1]))
        ax.set_ylim(float(grid_y[0]), float(grid_y[-1]))
    ax.set_aspect("equal", adjustable="box")  # circles should look round
    _style_axes(ax, style, title=_boundary_title(result), xlabel="feature 1", ylabel="feature 2")
    ax.grid(False)
    return Frame(title=_suptitle(figure, result, "Decision surface", style))


def _binary_surface(
    figure: Figure,
    ax: Axes,
    grid_x: np.ndarray,
    grid_y: np.ndarray,
    surface: np.ma.MaskedArray,
    colors: Sequence[Color],
    style: _Style,
) -> None:
    """Probability of class 1 from class 0's color through white to class 1's."""
    cmap: Colormap = LinearSegmentedColormap.from_list(
        "gradwatch_two_classes", [colors[0], "#ffffff", colors[1]]
    )
    filled = ax.contourf(
        grid_x, grid_y, surface, levels=np.linspace(0.0, 1.0, 11), cmap=cmap, alpha=0.55
    )
    if surface.min() < 0.5 < surface.max():
        ax.contour(
            grid_x, grid_y, surface, levels=[0.5], colors="#222222", linewidths=style.pt(1.2)
        )
    # An inset, not a layout slot: it follows the axes that equal aspect
    # shrinks, instead of staying at the edge of the space the axes had.
    colorbar = figure.colorbar(filled, cax=ax.inset_axes((1.03, 0.0, 0.035, 1.0)))
    _style_colorbar(colorbar, "predicted probability of class 1", style)


def _boundary_title(result: Result) -> str:
    after = (result.get("metrics") or {}).get("after") or {}
    accuracy = after.get("accuracy")
    if isinstance(accuracy, int | float):
        return f"after training (training accuracy {accuracy:.3f})"
    return "after training"


# --------------------------------------------------------------------------- registry


def _has_points(result: Result) -> bool:
    points = (result.get("dataset") or {}).get("points") or {}
    return bool(points.get("x")) and points.get("y") is not None


def _has_tutorial(key: str) -> Callable[[Result], bool]:
    def check(result: Result) -> bool:
        return bool((result.get("tutorial") or {}).get(key))

    return check


_DRAWERS: dict[str, Callable[[Figure, Result, _Style], Frame]] = {
    "dataset": _draw_dataset,
    "weights": _draw_weights,
    "gradients": _draw_gradients,
    "gradient_flow": _draw_gradient_flow,
    "activations": _draw_activations,
    "histograms": _draw_histograms,
    "boundary": _draw_boundary,
}

_HAS_DATA: dict[str, Callable[[Result], bool]] = {
    "dataset": _has_points,
    "weights": _has_tutorial("weights"),
    "gradients": _has_tutorial("gradients"),
    "gradient_flow": lambda result: bool(_gradient_layers(result)),
    "activations": lambda result: bool(_activation_layers(result)),
    "histograms": lambda result: bool(_histogram_layers(result)),
    "boundary": lambda result: result.get("boundary") is not None,
}

_MISSING_DATA: dict[str, str] = {
    "dataset": "it stores no data points",
    "weights": "weights were not captured",
    "gradients": "gradients were not captured",
    "gradient_flow": "gradients were not captured",
    "activations": "activations were not captured",
    "histograms": "gradient histograms were not captured",
    "boundary": "the decision surface is drawn for 2-D datasets only",
}


# ------------------------------------------------------------ for other plot modules


def render_figure(build: Callable[[], Figure]) -> bytes:
    """PNG bytes of the figure `build` returns, built and drawn under this module's lock.

    For plot modules beside this one (core.plotting.study_plots): matplotlib's text
    state is process-wide, so every render in a process takes the same lock;
    and they draw on the same text-caching canvas as this module's plots.
    """
    with _RENDER_LOCK:
        return render_png(build())
