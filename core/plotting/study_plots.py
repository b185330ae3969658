"""Plots of a study: its configurations side by side, drawn from the study's series.

`study_series` reduces the children's results to the few numbers the plots
need (per configuration, aggregated over seeds); the series is stored with
the study, so any size can be drawn later without reading the children
again. `render_study_plot` draws one plot from a series, with matplotlib's
object API, as a PNG of exactly the asked pixel size: panels in fixed margins
(`core.plotting.layout`) on the text-caching canvas (`core.plotting.canvas`), as the
plots of an experiment.

    depth           per-layer gradient S.D. and norm against depth, one line per
                    configuration, at initialization (the first step's gradient)
                    and in the last epoch: Glorot & Bengio's view of where
                    gradients vanish
    curves          loss and accuracy over epochs, one line per configuration,
                    the band spanning its seeds
    gradient_flow   each configuration's log10 gradient norm, layer by epoch, one
                    heatmap each on one color scale
    boundary        each configuration's decision surface, side by side (2-D data)

Example:
    >>> series = study_series(configs, seeds, results)
    >>> png = render_study_plot("depth", series, width=900, height=600, dpi=100)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap, Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from core.experiment.spec import ExperimentSpec, dataset_shape
from core.plotting.canvas import shared_renderer
from core.plotting.experiment_plots import (
    HEATMAP_COLORMAP,
    MISSING_COLOR,
    PlotSize,
    check_plot_size,
    figure_inches,
    render_figure,
)
from core.plotting.layout import Frame, InViewLocator, InViewLogLocator, arrange

STUDY_PLOT_NAMES: tuple[str, ...] = ("depth", "curves", "gradient_flow", "boundary")

STUDY_PLOT_DESCRIPTIONS: Mapping[str, str] = {
    "depth": "per-layer gradient S.D. and norm against depth, one line per configuration, "
    "at initialization and in the last epoch (Glorot & Bengio's view)",
    "curves": "loss and accuracy over epochs, one line per configuration, bands over seeds",
    "gradient_flow": "each configuration's log10 kernel gradient norm, layer by epoch",
    "boundary": "each configuration's decision surface side by side (2-D data)",
}

SERIES_VERSION = 1
MAX_PANELS = 16  # heatmaps or surfaces in one figure; past this they are unreadable
MAX_BOUNDARY_POINTS = 300  # data points drawn over each surface


class UnknownStudyPlotError(KeyError):
    """A plot name that is not one of `STUDY_PLOT_NAMES`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown plot {name!r}; choose one of {', '.join(STUDY_PLOT_NAMES)}")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class StudyPlotUnavailableError(ValueError):
    """A known plot that this study has no numbers for."""

    def __init__(self, name: str) -> None:
        reasons = {
            "depth": "no child captured gradients",
            "curves": "no child finished training",
            "gradient_flow": "no child captured gradients",
            "boundary": "decision surfaces are drawn for 2-D datasets only",
        }
        super().__init__(f"plot {name!r} is not available for this study: {reasons[name]}")
        self.name = name


# ------------------------------------------------------------------------- series


def _floats(values: Any) -> np.ndarray:
    if values is None:
        return np.array([], dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def _json_list(values: np.ndarray) -> list[Any]:
    """Floats for JSON, every non-finite value as None."""
    out: list[Any] = values.tolist()
    if values.ndim == 1:
        return [v if math.isfinite(v) else None for v in out]
    return [_json_list(row) for row in values]


def _stack(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of unequal length as one array, padded with NaN (a diverged run stops early)."""
    width = max((row.size for row in rows), default=0)
    out = np.full((len(rows), width), np.nan)
    for index, row in enumerate(rows):
        out[index, : row.size] = row
    return out


def _nan_stat(stat: Callable[..., np.ndarray], values: np.ndarray) -> np.ndarray:
    """`stat` over seeds; an all-NaN column is NaN, which is the right answer there."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return stat(values, axis=0)


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def _at_start(initial: list[float | None], first_point: np.ndarray) -> np.ndarray:
    """Each layer's gradient statistic at the first step (the result's `initial`), or,
    for a result without it, at the first capture point."""
    if any(value is None for value in initial):
        return first_point
    return np.array(initial, dtype=np.float64)


def _kernel_layers(result: Mapping[str, Any]) -> list[str]:
    series = result.get("series") or {}
    names = [str(layer["name"]) for layer in result.get("layers") or [] if "name" in layer]
    return [
        name
        for name in names or list(series)
        if ((series.get(name) or {}).get("kernel") or {}).get("grad_norm") is not None
    ]


@dataclass
class _ConfigRuns:
    """The succeeded runs of one configuration, reduced to what the plots draw."""

    loss: list[np.ndarray]
    accuracy: list[np.ndarray]
    layers: list[str] | None = None
    std_first: list[np.ndarray] | None = None
    std_last: list[np.ndarray] | None = None
    norm_first: list[np.ndarray] | None = None
    norm_last: list[np.ndarray] | None = None
    flow_x: list[float] | None = None
    flow: list[np.ndarray] | None = None
    boundary: dict[str, Any] | None = None
    first_epoch: int | None = None
    last_epoch: int | None = None

    def add(self, result: Mapping[str, Any]) -> None:
        history = result.get("history") or {}
        self.loss.append(_floats(history.get("loss")))
        self.accuracy.append(_floats(history.get("accuracy")))
        self._add_gradients(result)
        if self.boundary is None and result.get("boundary"):
            self.boundary = _boundary(result)

    def _add_gradients(self, result: Mapping[str, Any]) -> None:
        names = _kernel_layers(result)
        if not names or (self.layers is not None and names != self.layers):
            return
        kernels = [result["series"][name]["kernel"] for name in names]
        stds = _stack([_floats(k.get("grad_std")) for k in kernels])
        norms = _stack([_floats(k.get("grad_norm")) for k in kernels])
        if stds.size == 0 or norms.size == 0:
            return
        if self.layers is None:
            self.layers = names
            self.std_first, self.std_last, self.norm_first, self.norm_last = [], [], [], []
            self.flow = []
            epochs = _floats((result.get("capture") or {}).get("epoch"))
            self.flow_x = epochs.tolist() if epochs.size == norms.shape[1] else None
            self.first_epoch = int(epochs[0]) if epochs.size else 1
            self.last_epoch = int(epochs[-1]) if epochs.size else norms.shape[1]
        assert self.std_first is not None and self.std_last is not None
        assert self.norm_first is not None and self.norm_last is not None
        assert self.flow is not None
        initial = [((result.get("initial") or {}).get(name) or {}).get("kernel") or {}
                   for name in names]  # fmt: skip
        self.std_first.append(_at_start([k.get("grad_std") for k in initial], stds[:, 0]))
        self.std_last.append(stds[:, -1])
        self.norm_first.append(_at_start([k.get("grad_norm") for k in initial], norms[:, 0]))
        self.norm_last.append(norms[:, -1])
        self.flow.append(_log10(norms))

    def to_json_dict(self, config: Mapping[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "index": config["index"],
            "label": config["label"],
            "runs": len(self.loss),
            "curves": {"loss": _band(self.loss), "accuracy": _band(self.accuracy)},
            "depth": None,
            "flow": None,
            "boundary": self.boundary,
        }
        if self.layers is not None and self.flow:
            entry["depth"] = {
                "layers": self.layers,
                "first_epoch": self.first_epoch,
                "last_epoch": self.last_epoch,
                "std_first": _geometric(self.std_first),
                "std_last": _geometric(self.std_last),
                "norm_first": _geometric(self.norm_first),
                "norm_last": _geometric(self.norm_last),
            }
            flows = self.flow
            width = min(flow.shape[1] for flow in flows)
            mean = _nan_stat(np.nanmean, np.stack([flow[:, :width] for flow in flows]))
            entry["flow"] = {
                "layers": self.layers,
                "x": (self.flow_x or list(range(1, width + 1)))[:width],
                "log10_norm": _json_list(mean),
            }
        return entry


def _band(runs: Sequence[np.ndarray]) -> dict[str, list[Any]]:
    """Per epoch: mean, min and max over seeds (a run that stopped early drops out)."""
    values = _stack(runs)
    if values.size == 0:
        return {"mean": [], "min": [], "max": []}
    return {
        "mean": _json_list(_nan_stat(np.nanmean, values)),
        "min": _json_list(_nan_stat(np.nanmin, values)),
        "max": _json_list(_nan_stat(np.nanmax, values)),
    }


def _geometric(runs: Sequence[np.ndarray] | None) -> list[Any]:
    """Per layer, the geometric mean over seeds: gradients spread over decades."""
    logs = _log10(np.stack(list(runs or [])))
    return _json_list(10.0 ** _nan_stat(np.nanmean, logs))


def _boundary(result: Mapping[str, Any]) -> dict[str, Any]:
    boundary = result["boundary"]
    points = (result.get("dataset") or {}).get("points") or {}
    x = points.get("x") or []
    y = points.get("y") or []
    keep: list[int] = []
    if points.get("projection", "raw") == "raw" and x and len(x[0]) == 2:
        step = max(1, math.ceil(len(x) / MAX_BOUNDARY_POINTS))
        keep = list(range(0, len(x), step))
    after = (result.get("metrics") or {}).get("after") or {}
    # Probabilities to 4 decimals: the surface is drawn in 10 bands, and the series
    # of a large study stays a few MB.
    z = np.round(_floats([[math.nan if v is None else v for v in row] for row in boundary["z"]]), 4)
    return {
        "x": boundary["x"],
        "y": boundary["y"],
        "z": _json_list(z),
        "classes": int(boundary.get("classes") or 2),
        "accuracy": after.get("accuracy"),
        "points": {"x": [x[i] for i in keep], "y": [y[i] for i in keep]},
    }


def study_series(
    configs: Sequence[Mapping[str, Any]],
    seeds: int,
    results: Iterable[Mapping[str, Any] | None],
) -> dict[str, Any]:
    """The numbers the study's plots draw, from its children's results in child order.

    `results` may be a generator (each result is reduced, then dropped); None
    stands for a child that did not succeed.
    """
    runs = [_ConfigRuns([], []) for _ in configs]
    for child, result in enumerate(results):
        if result is not None:
            runs[child // seeds].add(result)
    return {
        "version": SERIES_VERSION,
        "configs": [runs[index].to_json_dict(config) for index, config in enumerate(configs)],
    }


def planned_study_plots(specs: Sequence[ExperimentSpec]) -> list[str]:
    """The plots a study of these child specs will have, if its children succeed."""
    gradients = any(spec.capture.gradients for spec in specs)
    planar = any(dataset_shape(spec.dataset)[1] == 2 for spec in specs)
    has = {"depth": gradients, "curves": True, "gradient_flow": gradients, "boundary": planar}
    return [name for name in STUDY_PLOT_NAMES if has[name]]


def available_study_plots(series: Mapping[str, Any]) -> list[str]:
    """The plots this series has numbers for, in `STUDY_PLOT_NAMES` order."""
    return [name for name in STUDY_PLOT_NAMES if _HAS_DATA[name](series)]


# ------------------------------------------------------------------------- render


@dataclass(frozen=True)
class _Style:
    """Font and line sizes in points, shrunk with a figure smaller than full size."""

    scale: float
    width_pt: float
    height_pt: float
    landscape: bool

    @classmethod
    def for_size(cls, width: int, height: int, dpi: int) -> _Style:
        width_pt, height_pt = width / dpi * 72, height / dpi * 72
        return cls(
            scale=min(1.0, min(width_pt, height_pt) / 400.0),
            width_pt=width_pt,
            height_pt=height_pt,
            landscape=width >= height,
        )

    def pt(self, size: float) -> float:
        return size * self.scale


def render_study_plot(
    name: str,
    series: Mapping[str, Any],
    *,
    width: int = PlotSize.WIDTH,
    height: int = PlotSize.HEIGHT,
    dpi: int = PlotSize.DPI,
) -> bytes:
    """A PNG of study plot `name`, exactly `width` x `height` pixels.

    Raises:
        UnknownStudyPlotError (a KeyError): `name` is not in `STUDY_PLOT_NAMES`.
        PlotSizeError (a ValueError): a size is outside `PlotSize`.
        StudyPlotUnavailableError (a ValueError): the series lacks the plot's numbers.
    """
    if name not in _DRAWERS:
        raise UnknownStudyPlotError(name)
    check_plot_size(width=width, height=height, dpi=dpi)
    if not _HAS_DATA[name](series):
        raise StudyPlotUnavailableError(name)
    return render_figure(lambda: _build_figure(name, series, width=width, height=height, dpi=dpi))


def _build_figure(
    name: str, series: Mapping[str, Any], *, width: int, height: int, dpi: int
) -> Figure:
    """The figure `render_study_plot` draws, for a caller that holds the render lock."""
    style = _Style.for_size(width, height, dpi)
    figure = Figure(figsize=(figure_inches(width, dpi), figure_inches(height, dpi)), dpi=dpi)
    frame = _DRAWERS[name](figure, series, style)
    # No layout engine: constrained layout measured every panel twice per
    # draw, most of a render. Fixed margins are measured once, with the
    # renderer that then draws (its text measures are cached for the draw).
    renderer = shared_renderer(width, height, dpi)
    arrange(figure, frame, renderer, pad=style.pt(4.0), gap=style.pt(5.0))
    if name == "boundary":
        _square_surfaces(figure)
    return figure


def _config_colors(count: int) -> list[str]:
    """Distinct colors per configuration: tab10, tab20, then a sampled colormap."""
    if count <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [to_hex(cmap(i)) for i in range(count)]
    if count <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [to_hex(cmap(i)) for i in range(count)]
    cmap = matplotlib.colormaps["turbo"]
    return [to_hex(cmap(p)) for p in np.linspace(0.05, 0.95, count)]


def _style_axes(
    ax: Axes, style: _Style, title: str, xlabel: str = "", ylabel: str = "", *, grid: bool = True
) -> None:
    _style_frame(ax, style, title)
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


def _style_frame(ax: Axes, style: _Style, title: str) -> None:
    """A panel's title and spines; all a panel without ticks needs (styling ticks builds them)."""
    # An explicit y keeps matplotlib from measuring the x axis at every draw
    # to lift the title over top tick labels, which these plots never have.
    ax.set_title(title, fontsize=style.pt(10.0), pad=style.pt(4.0), y=1.0)
    for spine in ax.spines.values():
        spine.set_linewidth(style.pt(0.8))


def _locator(span_pt: float, style: _Style, *, across: bool, integer: bool = False) -> MaxNLocator:
    """Round-number ticks, as many as matplotlib's default gives an axis `span_pt` long.

    matplotlib's AutoLocator counts them from the Axes' current length, which
    the layout changes after measuring the tick labels; this counts them from
    the length the panel will roughly have (one label per 3 label heights
    across, per 2 up, as AutoLocator does), so the tick labels measured are
    the ones drawn.
    """
    bins = span_pt / ((3.0 if across else 2.0) * style.pt(8.0))
    return InViewLocator(nbins=max(1, min(int(bins), 9)), steps=[1, 2, 2.5, 5, 10], integer=integer)


def _cell(ax: Axes, style: _Style, *, reserved: float = 0.0) -> tuple[float, float]:
    """Points across and up a panel's grid cell, `reserved` points of the width
    going to something beside the grid."""
    spec = ax.get_subplotspec()
    rows, columns = (1, 1) if spec is None else spec.get_gridspec().get_geometry()
    return (style.width_pt - reserved) / columns, style.height_pt / rows


def _wrapped(figure: Figure, label: str, width_pt: float, size_pt: float) -> str:
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


def _note(ax: Axes, text: str, style: _Style) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=style.pt(9.0), color="#555555", wrap=True)  # fmt: skip


def _suptitle(figure: Figure, title: str, shown: int, total: int, style: _Style) -> Text:
    if shown < total:
        title += f" (first {shown} of {total} configurations)"
    return figure.suptitle(title, fontsize=style.pt(11.0))


def _config_legend(
    figure: Figure, configs: Sequence[Mapping[str, Any]], colors: Sequence[str], style: _Style
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


_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _power_of_ten(value: float, _: Any = None) -> str:
    """`10⁻³`: plain text, since matplotlib's mathtext labels cost most of a log plot's time."""
    if value <= 0 or not math.isfinite(value):
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return ""
    return "10" + str(round(exponent)).translate(_SUPERSCRIPTS)


def _log_y(ax: Axes) -> None:
    """A log y axis labelled at powers of ten, without minor ticks."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(InViewLogLocator(base=10.0, numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
    ax.yaxis.set_minor_locator(NullLocator())


def _finite(values: Any) -> np.ndarray:
    return _floats([math.nan if v is None else v for v in values or []])


# ----------------------------------------------------------------------- drawers


def _draw_depth(figure: Figure, series: Mapping[str, Any], style: _Style) -> Frame:
    configs = [c for c in series["configs"] if c.get("depth")]
    colors = _config_colors(len(configs))
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
                values = _finite(depth[key])
                x = np.arange(1, values.size + 1)
                ax.plot(x, np.where(values > 0, values, np.nan), color=color, marker="o",
                        markersize=style.pt(3.5), linewidth=style.pt(1.6))  # fmt: skip
                if len(depth["layers"]) > len(widest):
                    widest = list(depth["layers"])
            _log_y(ax)
            when = "at initialization" if column == 0 else "last epoch"
            _style_axes(ax, style, f"{ylabel}, {when}", ylabel="" if column else ylabel)
    for ax in axes[1]:
        ax.set_xlabel("layer (input side to output)", fontsize=style.pt(9.0))
        if len(widest) <= 12:
            ax.set_xticks(range(1, len(widest) + 1), widest, rotation=30, ha="right")
        else:
            across = 0.8 * _cell(ax, style)[0]
            ax.xaxis.set_major_locator(_locator(across, style, across=True, integer=True))
    return Frame(
        title=_suptitle(figure, "Gradients by depth", len(configs), len(configs), style),
        bottom=_config_legend(figure, configs, colors, style),
    )


def _draw_curves(figure: Figure, series: Mapping[str, Any], style: _Style) -> Frame:
    configs = [c for c in series["configs"] if c["curves"]["loss"]["mean"]]
    colors = _config_colors(len(configs))
    rows, cols = (1, 2) if style.landscape else (2, 1)
    axes = figure.subplots(rows, cols, sharex=True, squeeze=False).ravel()
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for config, color in zip(configs, colors, strict=True):
            band = config["curves"][metric]
            mean = _finite(band["mean"])
            epochs = np.arange(1, mean.size + 1)
            ax.plot(epochs, mean, color=color, linewidth=style.pt(1.6))
            if config["runs"] > 1:
                ax.fill_between(epochs, _finite(band["min"]), _finite(band["max"]),
                                color=color, alpha=0.18, linewidth=0)  # fmt: skip
        band_note = " (band: min to max over seeds)" if _seeded(configs) else ""
        title = f"training {metric}{band_note}"
        _style_axes(ax, style, title, xlabel="epoch", ylabel=metric)
        # About 0.8 of a cell is panel, the rest its labels.
        across, up = (0.8 * size for size in _cell(ax, style))
        ax.xaxis.set_major_locator(_locator(across, style, across=True, integer=True))
        ax.yaxis.set_major_locator(_locator(up, style, across=False))
    return Frame(
        title=_suptitle(figure, "Learning curves", len(configs), len(configs), style),
        bottom=_config_legend(figure, configs, colors, style),
    )


def _seeded(configs: Sequence[Mapping[str, Any]]) -> bool:
    return any(config["runs"] > 1 for config in configs)


def _grid(figure: Figure, count: int, *, aspect: float) -> list[Axes]:
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


def _columns(axes: Sequence[Axes]) -> int:
    spec = axes[0].get_subplotspec() if axes else None
    return 1 if spec is None else spec.get_gridspec().ncols


_FLOW_BAR_PT = 90.0  # the colorbar's band right of the heatmaps, ticks and label included


def _draw_flow(figure: Figure, series: Mapping[str, Any], style: _Style) -> Frame:
    every = [c for c in series["configs"] if c.get("flow")]
    configs = every[:MAX_PANELS]
    grids = [np.ma.masked_invalid(_stack([_finite(r) for r in c["flow"]["log10_norm"]]))
             for c in configs]  # fmt: skip
    finite = [g.compressed() for g in grids if g.count()]
    low = float(min(v.min() for v in finite)) if finite else 0.0
    high = float(max(v.max() for v in finite)) if finite else 1.0
    norm = Normalize(vmin=low, vmax=high if high > low else low + 1.0)
    cmap = matplotlib.colormaps[HEATMAP_COLORMAP].with_extremes(bad=MISSING_COLOR)
    image = None
    axes = _grid(figure, len(configs), aspect=1.4)
    # What a panel's title may span: its share of the figure less the colorbar's band.
    title_pt = (style.width_pt - style.pt(_FLOW_BAR_PT)) / _columns(axes) - style.pt(5.0)
    for ax, config, grid in zip(axes, configs, grids, strict=True):
        flow = config["flow"]
        x = _floats(flow["x"])
        left, right = (x[0] - 0.5, x[-1] + 0.5) if x.size else (0.5, 1.5)
        image = ax.imshow(grid, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest",
                          extent=(left, right, len(flow["layers"]) - 0.5, -0.5))  # fmt: skip
        title = _wrapped(figure, str(config["label"]), title_pt, style.pt(10.0))
        _style_axes(ax, style, title, xlabel="epoch", grid=False)
        # The layer names take about 45 points of a cell's width.
        across, up = _cell(ax, style, reserved=style.pt(_FLOW_BAR_PT))
        epochs = _locator(across - style.pt(45.0), style, across=True, integer=True)
        ax.xaxis.set_major_locator(epochs)
        if len(flow["layers"]) <= 12:
            ax.set_yticks(range(len(flow["layers"])), flow["layers"], fontsize=style.pt(7.0))
        else:
            ax.yaxis.set_major_locator(_locator(0.8 * up, style, across=False, integer=True))
    frame = Frame(title=_suptitle(figure, "Gradient flow", len(configs), len(every), style))
    if image is not None:
        cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
        colorbar = figure.colorbar(image, cax=cax)
        colorbar.set_label("log10 ‖∇W‖ (grey: zero or not finite)", fontsize=style.pt(9.0))
        colorbar.ax.tick_params(labelsize=style.pt(8.0))
        colorbar.locator = _locator(0.8 * style.height_pt, style, across=False)
        frame.right, frame.bar, frame.bar_gap = cax, style.pt(14.0), style.pt(18.0)
    return frame


def _draw_boundary(figure: Figure, series: Mapping[str, Any], style: _Style) -> Frame:
    every = [c for c in series["configs"] if c.get("boundary")]
    configs = every[:MAX_PANELS]
    # Square cells: a surface is drawn at equal aspect, and a cell of another
    # shape leaves part of itself empty.
    axes = _grid(figure, len(configs), aspect=1.0)
    title_pt = style.width_pt / _columns(axes) - style.pt(5.0)
    class_cmap = matplotlib.colormaps["tab10"]
    two = LinearSegmentedColormap.from_list(
        "gradwatch_study_two_classes", [to_hex(class_cmap(0)), "#ffffff", to_hex(class_cmap(1))]
    )
    for ax, config in zip(axes, configs, strict=True):
        boundary = config["boundary"]
        gx, gy = _finite(boundary["x"]), _finite(boundary["y"])
        z = _floats([[math.nan if v is None else v for v in row] for row in boundary["z"]])
        if z.ndim == 3:  # per-class probabilities: the predicted class
            z = np.where(np.isfinite(z).all(axis=2), np.nanargmax(np.nan_to_num(z), axis=2), np.nan)
            classes = int(boundary["classes"])
            ax.contourf(gx, gy, np.ma.masked_invalid(z), levels=np.arange(classes + 1) - 0.5,
                        cmap=matplotlib.colormaps["tab10"], alpha=0.35)  # fmt: skip
        elif np.isfinite(z).any():
            surface = np.ma.masked_invalid(z)
            ax.contourf(gx, gy, surface, levels=np.linspace(0, 1, 11), cmap=two, alpha=0.55)
            if surface.min() < 0.5 < surface.max():
                ax.contour(gx, gy, surface, levels=[0.5], colors="#222222",
                           linewidths=style.pt(1.0))  # fmt: skip
        else:
            _note(ax, "no finite predictions", style)
        points = boundary.get("points") or {}
        if points.get("x"):
            xy = _floats(points["x"])
            labels = np.asarray(points["y"], dtype=np.int64)
            ax.scatter(xy[:, 0], xy[:, 1], c=class_cmap(labels % 10),
                       s=style.pt(6.0), linewidths=style.pt(0.3), edgecolors="white")  # fmt: skip
        accuracy = boundary.get("accuracy")
        title = _wrapped(figure, str(config["label"]), title_pt, style.pt(10.0))
        if isinstance(accuracy, int | float):
            title += f"\naccuracy {accuracy:.3f}"
        ax.set_xticks([])
        ax.set_yticks([])
        _style_frame(ax, style, title)
        if gx.size and gy.size:
            ax.set_xlim(float(gx[0]), float(gx[-1]))
            ax.set_ylim(float(gy[0]), float(gy[-1]))
    return Frame(
        title=_suptitle(figure, "Decision surfaces (first seed)", len(configs), len(every), style)
    )


def _square_surfaces(figure: Figure) -> None:
    """Draw each surface at equal aspect ("circles should look round"), once it is placed.

    At equal aspect a panel shrinks inside its cell at draw time, centered,
    and its title comes down with it. Set after the layout, so the layout
    measures each title over the whole cell, where it never runs into the
    panel above or the figure's title.
    """
    for ax in figure.axes:
        ax.set_aspect("equal", adjustable="box")


_DRAWERS: dict[str, Callable[[Figure, Mapping[str, Any], _Style], Frame]] = {
    "depth": _draw_depth,
    "curves": _draw_curves,
    "gradient_flow": _draw_flow,
    "boundary": _draw_boundary,
}

_HAS_DATA: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "depth": lambda s: any(c.get("depth") for c in s.get("configs", [])),
    "curves": lambda s: any(c["curves"]["loss"]["mean"] for c in s.get("configs", [])),
    "gradient_flow": lambda s: any(c.get("flow") for c in s.get("configs", [])),
    "boundary": lambda s: any(c.get("boundary") for c in s.get("configs", [])),
}
