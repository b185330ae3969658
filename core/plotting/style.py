"""The look every plot shares: sizes in points for a render, colors, and plain-text log labels.

Both the plots of one run (`core.plotting.experiment`) and those of a study
(`core.plotting.study`) size their text and lines from one `Style`, so a
thumbnail is a small copy of the full plot, and label powers of ten with
Unicode superscripts rather than mathtext.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation

T = TypeVar("T")
Color = str

LAYER_COLORMAP = "viridis"
SNAPSHOT_COLORMAP = "plasma"
HEATMAP_COLORMAP = "magma"
MISSING_COLOR = "#d0d0d0"
NOTE_COLOR = "#555555"
TIMES = "\N{MULTIPLICATION SIGN}"  # between the sizes of a shape, as 8x8x1


class _Points:
    """A size in points at full scale that a `Style` gives scaled for its figure (`Style.pt`)."""

    def __init__(self, size: float) -> None:
        self.size = size

    def __get__(self, style: Style, owner: type[Style] | None = None) -> float:
        return self.size * style.scale  # as style.pt(self.size), one call fewer


@dataclass(frozen=True)
class Style:
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
    def for_size(cls, width: int, height: int, dpi: int) -> Style:
        width_pt, height_pt = width / dpi * 72, height / dpi * 72
        scale = min(1.0, min(width_pt, height_pt) / cls.FULL_SIZE_PT)
        return cls(scale=scale, width_pt=width_pt, height_pt=height_pt, landscape=width >= height)

    # The sizes most text and lines take, scaled for the figure when read (`style.text`).
    text = _Points(10.0)
    small = _Points(8.5)
    title = _Points(11.0)
    line = _Points(1.6)  # a line's width

    def pt(self, size: float) -> float:
        """A size in points at full scale, scaled for this figure."""
        return size * self.scale


def new_figure(width: int, height: int, dpi: int) -> Figure:
    """An empty figure that Agg draws at exactly `width` x `height` pixels."""
    return Figure(figsize=(figure_inches(width, dpi), figure_inches(height, dpi)), dpi=dpi)


def figure_inches(pixels: int, dpi: int) -> float:
    """The smallest figure size in inches that Agg turns into exactly `pixels`.

    Agg truncates `inches * dpi` to an int, and `pixels / dpi * dpi` can land a
    hair below `pixels` (201 / 50 * 50 == 200.99999999999997).
    """
    inches = pixels / dpi
    while inches * dpi < pixels:
        inches = math.nextafter(inches, math.inf)
    return inches


def as_floats(values: Any) -> np.ndarray:
    """Floats with every None (a stored non-finite number) as NaN."""
    if values is None:
        return np.array([], dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def log10(values: np.ndarray) -> np.ndarray:
    """log10 of the positive values; NaN for zero, negative or missing ones."""
    with np.errstate(all="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def sample_colors(colormap: str, count: int) -> list[Color]:
    """`count` colors spread over `colormap`, short of its top."""
    # The top of viridis and plasma is a yellow that vanishes on white.
    cmap = matplotlib.colormaps[colormap]
    positions = np.linspace(0.0, 0.85, count) if count > 1 else np.zeros(count)
    return [to_hex(cmap(position)) for position in positions]


def snapshot_colors(count: int) -> list[Color]:
    """The colors of `count` moments of a run, first to last (histogram snapshots, ...)."""
    return sample_colors(SNAPSHOT_COLORMAP, count)


def class_colors(count: int) -> list[Color]:
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [to_hex(cmap(index % cmap.N)) for index in range(count)]


def spread_pick(names: Sequence[T], most: int) -> list[T]:
    """At most `most` names, evenly spread, always with the first and the last."""
    if len(names) <= most:
        return list(names)
    picks = np.unique(np.linspace(0, len(names) - 1, most).round().astype(int))
    return [names[index] for index in picks]


def note(ax: Axes, text: str, style: Style, *, size: float = 10.0) -> None:
    """A centered note in an axes that has nothing to show, `size` points at full scale."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=style.pt(size),
        color=NOTE_COLOR,
        wrap=True,
    )


SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_MATHTEXT_LABEL = re.compile(r"\$\\mathdefault\{(.*)\}\$")
_MATHTEXT_POWER = re.compile(r"\^\{(-?\d+)\}")


class PlainLogFormatter(LogFormatterSciNotation):
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
        return _MATHTEXT_POWER.sub(lambda power: power.group(1).translate(SUPERSCRIPTS), body)


def power_of_ten(value: float, _: Any = None) -> str:
    """`10⁻³`: plain text, since matplotlib's mathtext labels cost most of a log plot's time."""
    if value <= 0 or not math.isfinite(value):
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return ""
    return "10" + str(round(exponent)).translate(SUPERSCRIPTS)


def shape_text(shape: Sequence[Any]) -> str:
    """A shape as its sizes with multiplication signs between them."""
    return TIMES.join(str(size) for size in shape)
