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

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from core.plotting.experiment.axes import Result, log_y, style_axes, tick_locator
from core.plotting.experiment.layers import positive_only
from core.plotting.experiment.through_time import NormPanels, norms_kind, point_label
from core.plotting.layout import Frame
from core.plotting.style import Style, note, snapshot_colors

# A channel whose gradient norm is under this fraction of its layer's median (or zero)
# is quiet: it learns a thousand times slower than the layer's typical filter.
QUIET_FRACTION = 1e-3


def _draw_channels(figure: Figure, result: Result, style: Style) -> Frame:
    panels = NormPanels("channels", "channels", 0, "‖∂L/∂W_c‖", "convolutions", _profile)
    return panels.draw(figure, result, style, "Gradients per channel")


def relative_to_median(row: np.ndarray) -> np.ndarray:
    """Each channel's norm over the median of the layer's positive finite norms at that
    point: zeros stay out of the median, so that a layer whose filters are mostly dead
    still has a scale (its dead ones at 0); NaN throughout where no norm is positive."""
    positive = row[np.isfinite(row) & (row > 0)]
    if not positive.size:
        return np.full(row.shape, np.nan)
    return row / float(np.median(positive))


def quiet_channels(row: np.ndarray) -> int:
    """Channels at one point whose norm is zero or under `QUIET_FRACTION` of the median."""
    ratios = relative_to_median(row)
    zero = np.isfinite(row) & (row == 0)
    return int(np.count_nonzero(zero | (np.isfinite(ratios) & (ratios < QUIET_FRACTION))))


def _profile(
    ax: Axes, norms: np.ndarray, channels: np.ndarray, entry: Mapping[str, Any], style: Style
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


CHANNELS = norms_kind(
    "channels",
    description="convolutions: log10 ‖∂L/∂W_c‖ of each output channel's kernel gradient, "
    "channel by capture point, and each channel over the layer's median at the first and "
    "last capture point (dead filters: channels near zero)",
    missing="it has no per-channel gradients: the network has no convolution (Conv1D or "
    "Conv2D), gradients were not captured, or the result predates them (version 3)",
    draw=_draw_channels,
)
