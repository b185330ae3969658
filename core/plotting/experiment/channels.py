"""Gradients per channel: which filters of each convolution still learn.

For each convolution (Conv1D, Conv2D, residual blocks' members too), a heatmap of
log10 ‖∂L/∂W[..., c]‖, the kernel gradient's norm for each output channel c, channel
by capture point, on one color scale for every layer; grey cells are zero (or not
finite): no gradient reaches that filter. Under it each channel's norm at the first
and the last capture point over the layer's median there, on a log axis, with the
line under which a channel counts as quiet (`QUIET_FRACTION` of the median): a filter
that sits there while its neighbours learn is dead, the convolutional face of dying
ReLUs, and the layer's `grad_norm` (all its channels together) hides it. Drawn from
`result.channels` (core/experiment/result.py).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from core.plotting.experiment.axes import (
    Result,
    log_y,
    point_epochs,
    style_axes,
    style_colorbar,
    suptitle,
    tick_locator,
)
from core.plotting.experiment.layers import positive_only
from core.plotting.experiment.through_time import (
    layers_with_norms,
    norm_grid,
    norm_heatmap,
    point_label,
    shared_scale,
)
from core.plotting.kinds import PlotKind
from core.plotting.layout import Frame
from core.plotting.style import Style, as_floats, log10, note, snapshot_colors, spread_pick

MAX_CONV_PANELS = 4  # columns of heatmap and profile; past this they are unreadable
# A channel whose gradient norm is under this fraction of its layer's median (or zero)
# is quiet: it learns a thousand times slower than the layer's typical filter.
QUIET_FRACTION = 1e-3


def _draw_channels(figure: Figure, result: Result, style: Style) -> Frame:
    every = layers_with_norms(result, "channels")
    names = spread_pick(every, MAX_CONV_PANELS)
    section = result["channels"]
    capture_every = (result.get("capture") or {}).get("every")
    norms = {name: norm_grid(section[name]) for name in names}
    logs = {name: np.ma.masked_invalid(log10(grid)) for name, grid in norms.items()}
    scale = shared_scale(list(logs.values()))
    grid = figure.subplots(2, len(names), sharex="col", squeeze=False)
    image: AxesImage | None = None
    for column, name in enumerate(names):
        entry = {**section[name], "every": capture_every}
        channels = _channels(entry, norms[name].shape[1])
        points, ylabel = point_epochs(entry)
        heat_ax, profile_ax = grid[0][column], grid[1][column]
        drawn = norm_heatmap(heat_ax, logs[name], channels, points, scale, style)
        image = drawn or image
        style_axes(heat_ax, style, title=f"{name}: log10 ‖∂L/∂W_c‖", ylabel=ylabel)
        heat_ax.grid(False)
        heat_ax.yaxis.set_major_locator(tick_locator(heat_ax, "y", style, integer=True))
        if drawn is None:
            note(heat_ax, "no finite gradient norms", style)
        _profile(profile_ax, norms[name], channels, entry, style)
        if column:
            heat_ax.set_ylabel("")
            profile_ax.set_ylabel("")
    title = "Gradients per channel"
    if len(names) < len(every):
        title += f" ({len(names)} of {len(every)} convolutions)"
    frame = Frame(title=suptitle(figure, result, title, style))
    if image is not None:
        cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
        colorbar = figure.colorbar(image, cax=cax)
        colorbar.locator = tick_locator(grid[0][0], "y", style)
        style_colorbar(colorbar, "log10 ‖∂L/∂W_c‖ (grey: zero or not finite)", style)
        frame.right, frame.bar, frame.bar_gap = cax, style.pt(14.0), style.pt(18.0)
    return frame


def relative_to_median(row: np.ndarray) -> np.ndarray:
    """Each channel's norm over the median of the layer's finite norms at that point."""
    finite = row[np.isfinite(row)]
    median = float(np.median(finite)) if finite.size else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return row / median if median > 0 else np.full(row.shape, np.nan)


def quiet_channels(row: np.ndarray) -> int:
    """Channels at one point whose norm is zero or under `QUIET_FRACTION` of the median."""
    ratios = relative_to_median(row)
    return int(np.count_nonzero(np.isfinite(ratios) & (ratios < QUIET_FRACTION)))


def _profile(
    ax: Axes, norms: np.ndarray, channels: np.ndarray, entry: dict[str, object], style: Style
) -> None:
    """Each channel's norm over the layer's median at the first and the last capture
    point with a finite one, on a log axis, with the quiet line; the title counts the
    quiet channels at the last."""
    finite = np.flatnonzero(np.isfinite(norms).any(axis=1))
    rows = list(dict.fromkeys(finite[[0, -1]].tolist())) if finite.size else []
    labels = ("first", "last") if len(rows) > 1 else ("only",)
    for row, color, which in zip(rows, snapshot_colors(2), labels, strict=False):
        ax.plot(
            channels,
            positive_only(relative_to_median(norms[row])),
            color=color,
            linestyle="none",
            marker="o",
            markersize=style.pt(3.0),
            label=f"{which} capture point ({point_label(entry, row)})",
        )
    title = "÷ the layer's median"
    if rows:
        quiet = quiet_channels(norms[rows[-1]])
        if quiet:
            title = f"{quiet} of {norms.shape[1]} quiet at the {labels[-1]} point"
    style_axes(ax, style, title=title, xlabel="output channel", ylabel="‖∂L/∂W_c‖ / median")
    ax.xaxis.set_major_locator(tick_locator(ax, "x", style, integer=True))
    if not rows or not np.isfinite(positive_only(norms[rows])).any():
        note(ax, "no positive finite values", style)
        return
    ax.axhline(QUIET_FRACTION, color="#888888", linewidth=style.pt(0.6), linestyle="--")
    log_y(ax, style)
    ax.legend(fontsize=style.small, loc="best", frameon=False)


def _channels(entry: dict[str, object], count: int) -> np.ndarray:
    channels = as_floats(entry.get("channels"))
    return channels if channels.size == count else np.arange(float(count))


CHANNELS = PlotKind(
    name="channels",
    description="convolutions: log10 ‖∂L/∂W_c‖ of each output channel's kernel gradient, "
    "channel by capture point, and each channel over the layer's median at the first and "
    "last capture point (dead filters: channels near zero)",
    needs=lambda result: bool(layers_with_norms(result, "channels")),
    missing="it has no per-channel gradients: the network has no convolution (Conv1D or "
    "Conv2D), gradients were not captured, or the result predates them (version 3)",
    draw=_draw_channels,
)
