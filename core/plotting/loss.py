"""A regression's loss panel, drawn alike in an experiment's plot and a study's.

A regression has no accuracy: its loss is read against its baseline, the loss of
always predicting the mean target. That baseline (0.18 for the adding problem)
sits far under where training starts (about 5), so on a linear axis it is a line
along the floor. On a log axis the start, the baseline and a loss that solved the
task (far under it) are each a readable distance apart; the line is labelled with
what it is and its value.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib.axes import Axes

from core.plotting.style import Color, Style

BASELINE_COLOR = "#666666"
BASELINE_DASH = (0, (4, 2))


def baseline_label(baseline: float) -> str:
    return f"baseline: predict the mean ({baseline:.3g})"


def loss_on_log_scale(losses: Iterable[np.ndarray], baseline: float | None) -> bool:
    """Whether a loss panel takes a log axis: a regression's (it has a baseline) whose
    drawn losses are all positive, as a mean squared error is unless it is exactly 0."""
    if baseline is None or not baseline > 0:
        return False
    finite = [values[np.isfinite(values)] for values in losses]
    return any(values.size for values in finite) and all((values > 0).all() for values in finite)


def draw_baseline(
    ax: Axes, baseline: float, style: Style, *, color: Color = BASELINE_COLOR, label: bool = True
) -> None:
    """The baseline as a dashed line across the panel, labelled at its left end, above
    it: a loss starts high there, so the label is clear of it."""
    ax.axhline(baseline, color=color, linewidth=style.line, linestyle=BASELINE_DASH)
    if label:
        ax.text(
            0.02,
            baseline,
            baseline_label(baseline),
            transform=ax.get_yaxis_transform(),
            ha="left",
            va="bottom",
            fontsize=style.small,
            color="#444444",
        )
