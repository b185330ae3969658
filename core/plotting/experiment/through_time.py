"""Gradients through time: how far back in a sequence each recurrent layer's gradient reaches.

For each recurrent layer (SimpleRNN, LSTM, GRU), a heatmap of log10 ‖∂L/∂h_t‖,
timestep by capture point, on one color scale for every layer; under it the
decay curve ‖∂L/∂h_t‖ / ‖∂L/∂h_T‖ at the first and the last capture point, on a
log axis: a curve that falls by decades toward t = 1 is the vanishing gradient
through time (Bengio, Simard & Frasconi 1994), one that rises is its exploding
twin. Drawn from `result.through_time` (core/experiment/result.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from core.plotting.experiment.axes import (
    Result,
    cell_width,
    log_y,
    point_epochs,
    style_axes,
    style_colorbar,
    suptitle,
    tick_locator,
)
from core.plotting.experiment.gradient_flow import bin_columns, column_extent
from core.plotting.experiment.layers import layer_names_of, positive_only
from core.plotting.kinds import Drawer, Need, PlotKind
from core.plotting.layout import Frame
from core.plotting.style import (
    HEATMAP_COLORMAP,
    MISSING_COLOR,
    Style,
    as_floats,
    log10,
    note,
    snapshot_colors,
    spread_pick,
)

MAX_NORM_PANELS = 4  # columns of heatmap and lower panel; past this they are unreadable
RATIO_LABEL = "‖∂L/∂h_t‖ / ‖∂L/∂h_T‖"


def _draw_through_time(figure: Figure, result: Result, style: Style) -> Frame:
    panels = NormPanels("through_time", "timesteps", 1, "‖∂L/∂h_t‖", "recurrent layers", _decay)
    return panels.draw(figure, result, style, "Gradients through time")


# The lower panel of a layer's column: (axes, its norms (points, across), the values
# across, its entry with the capture's `every`, style).
LowerPanel = Callable[[Axes, np.ndarray, np.ndarray, Mapping[str, Any], Style], None]


@dataclass(frozen=True)
class NormPanels:
    """A column per layer of `result[section]` (at most `MAX_NORM_PANELS`): a heatmap of
    log10 `symbol`, `across` (numbered from `first`) by capture point, on one color
    scale for every layer, over a `lower` panel of the same norms."""

    section: str
    across: str
    first: int
    symbol: str
    layers: str  # what the layers are, for a title that shows some of them
    lower: LowerPanel

    def draw(self, figure: Figure, result: Result, style: Style, title: str) -> Frame:
        every = layers_with_norms(result, self.section)
        names = spread_pick(every, MAX_NORM_PANELS)
        section = result[self.section]
        capture_every = (result.get("capture") or {}).get("every")
        norms = {name: norm_grid(section[name]) for name in names}
        logs = {name: np.ma.masked_invalid(log10(grid)) for name, grid in norms.items()}
        scale = shared_scale(list(logs.values()))
        grid = figure.subplots(2, len(names), sharex="col", squeeze=False)
        image: AxesImage | None = None
        for column, name in enumerate(names):
            entry = {**section[name], "every": capture_every}
            across = self._across(entry, norms[name].shape[1])
            points, ylabel = point_epochs(entry)
            heat_ax, lower_ax = grid[0][column], grid[1][column]
            drawn = norm_heatmap(heat_ax, logs[name], across, points, scale, style)
            image = drawn or image
            style_axes(heat_ax, style, title=f"{name}: log10 {self.symbol}", ylabel=ylabel)
            heat_ax.grid(False)
            heat_ax.yaxis.set_major_locator(tick_locator(heat_ax, "y", style, integer=True))
            if drawn is None:
                note(heat_ax, "no finite gradient norms", style)
            self.lower(lower_ax, norms[name], across, entry, style)
            if column:
                heat_ax.set_ylabel("")
                lower_ax.set_ylabel("")
        if len(names) < len(every):
            title += f" ({len(names)} of {len(every)} {self.layers})"
        frame = Frame(title=suptitle(figure, result, title, style))
        if image is not None:
            cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
            colorbar = figure.colorbar(image, cax=cax)
            colorbar.locator = tick_locator(grid[0][0], "y", style)
            style_colorbar(colorbar, f"log10 {self.symbol} (grey: zero or not finite)", style)
            frame.right, frame.bar, frame.bar_gap = cax, style.pt(14.0), style.pt(18.0)
        return frame

    def _across(self, entry: Mapping[str, Any], count: int) -> np.ndarray:
        """The entry's own values across (timesteps, channels), else numbered from `first`."""
        values = as_floats(entry.get(self.across))
        return values if values.size == count else np.arange(self.first, self.first + count, 1.0)


def norm_heatmap(
    ax: Axes,
    logs: np.ma.MaskedArray,
    steps: np.ndarray,
    points: np.ndarray,
    scale: Normalize,
    style: Style,
) -> AxesImage | None:
    """log10 norms, timestep (or channel) across and capture point up (training goes
    upward)."""
    if logs.count() == 0:
        return None
    # More rows or columns than the panel has pixels only make the resampler average
    # them, at a cost that grows with their number (T can be 500, points thousands).
    across = round(cell_width(ax))
    shown = bin_columns(bin_columns(logs, across).T, across).T
    cmap = matplotlib.colormaps[HEATMAP_COLORMAP].with_extremes(bad=MISSING_COLOR)
    rows = points if points.size == logs.shape[0] else np.arange(1.0, logs.shape[0] + 1)
    return ax.imshow(
        shown,
        aspect="auto",
        cmap=cmap,
        norm=scale,
        interpolation="antialiased",
        origin="lower",
        extent=(*column_extent(steps), *column_extent(rows)),
    )


def _decay(
    ax: Axes, norms: np.ndarray, steps: np.ndarray, entry: Mapping[str, Any], style: Style
) -> None:
    """‖∂L/∂h_t‖ / ‖∂L/∂h_T‖ at the first and the last capture point with a finite
    ‖∂L/∂h_T‖ (a diverged run's last ones are not), on a log axis."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = positive_only(norms / norms[:, -1:])
    finite = np.flatnonzero(np.isfinite(ratios).any(axis=1))
    rows = list(dict.fromkeys(finite[[0, -1]].tolist())) if finite.size else []
    colors = snapshot_colors(2)
    labels = ("first", "last") if len(rows) > 1 else ("only",)
    for row, color, which in zip(rows, colors, labels, strict=False):
        label = f"{which} capture point ({point_label(entry, row)})"
        ax.plot(steps, ratios[row], color=color, linewidth=style.line, label=label)
    style_axes(ax, style, title="decay toward early steps", xlabel="timestep t", ylabel=RATIO_LABEL)
    ax.xaxis.set_major_locator(tick_locator(ax, "x", style, integer=True))
    if not rows:
        note(ax, "no positive finite values", style)
        return
    ax.axhline(1.0, color="#888888", linewidth=style.pt(0.6))
    log_y(ax, style)
    # Inside the panel: the curves rise toward t = T, which leaves a corner free.
    ax.legend(fontsize=style.small, loc="best", frameon=False)


def point_label(entry: Mapping[str, Any], index: int) -> str:
    """Which capture point `index` was: "epoch 1", or "epoch 1, step 3"."""
    epochs = list(entry.get("epoch") or [])
    steps = list(entry.get("step") or [])
    if index >= len(epochs):
        return f"point {index + 1}"
    if entry.get("every") == "step" and len(steps) == len(epochs):
        return f"epoch {epochs[index]}, step {steps[index]}"
    return f"epoch {epochs[index]}"


def norm_grid(entry: Mapping[str, Any]) -> np.ndarray:
    """Gradient norms as (capture points, timesteps or channels), NaN where missing;
    short rows padded."""
    rows = [
        as_floats([np.nan if v is None else v for v in row or []]) for row in entry["gradient_norm"]
    ]
    width = max((row.size for row in rows), default=0)
    grid = np.full((len(rows), width), np.nan)
    for index, row in enumerate(rows):
        grid[index, : row.size] = row
    return grid


def shared_scale(logs: list[np.ma.MaskedArray]) -> Normalize:
    """One color scale for every layer's heatmap, so their norms compare at a glance."""
    finite = [values.compressed() for values in logs if values.count()]
    low = float(min(values.min() for values in finite)) if finite else 0.0
    high = float(max(values.max() for values in finite)) if finite else 1.0
    return Normalize(vmin=low, vmax=high if high > low else low + 1.0)


def layers_with_norms(result: Result, section: str) -> list[str]:
    """The layers of `result[section]` (`through_time`, `channels`) with gradient norms,
    in the network's order."""
    norms = result.get(section) or {}
    if not isinstance(norms, Mapping):
        return []
    names = [name for name in layer_names_of(result) if name in norms]
    names += [name for name in norms if name not in names]
    return [
        name
        for name in names
        if isinstance(norms[name], Mapping) and norms[name].get("gradient_norm")
    ]


def norms_kind(section: str, *, description: str, missing: str, draw: Drawer) -> PlotKind:
    """The plot of the gradient norms in `result[section]` (`through_time`, `channels`),
    named as its section: available where one of the layers has norms there."""
    need = Need(lambda result: bool(layers_with_norms(result, section)), missing)
    return PlotKind(name=section, description=description, need=need, draw=draw)


THROUGH_TIME = norms_kind(
    "through_time",
    description="recurrent layers: log10 ‖∂L/∂h_t‖, timestep by capture point, and its decay "
    "‖∂L/∂h_t‖/‖∂L/∂h_T‖ at the first and last capture point",
    missing="it has no gradients through time: the network has no recurrent layer "
    "(SimpleRNN, LSTM or GRU), or gradients were not captured",
    draw=_draw_through_time,
)
