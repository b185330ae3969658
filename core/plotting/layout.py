"""Fixed margins for a figure's panels, measured once from the text around them.

matplotlib's constrained layout measures every Axes' whole tight bounding box
in two passes before each draw, and for the plots that was about half of a
render. The plots know what sits around their panels, so `arrange` measures
each panel's decorations once (tick labels, axis labels, title), gives every
grid row and column the room its largest decoration needs, and sets each
Axes' position in figure fractions. The figure-level pieces of a `Frame` (a
title on top, a legend or colorbar under or right of the panels, labels
shared by all panels) each get a band at the figure's edge.

Tick locators must not depend on the Axes' size (give them explicit bin
counts): the tick labels are measured before the final size is known, and
each axis label is then pinned at its measured offset from the spine, so
drawing does not measure the tick labels again to place it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.ticker import LogLocator, MaxNLocator
from matplotlib.transforms import Bbox, ScaledTranslation

MIN_PANEL_FRACTION = 0.1  # a panel never shrinks below this share of the figure, whatever the text
TITLE_GAP = 2.0  # the gap under the figure's title, in gaps


@dataclass
class Frame:
    """The figure-level pieces around the panels; each gets a band at an edge.

    `bottom` and `right` hold a legend, or an Axes drawn as a colorbar whose
    short side is `bar` points, `bar_gap` points further from the panels
    than a legend would be.
    """

    title: Text | None = None
    xlabel: Text | None = None
    ylabel: Text | None = None
    bottom: Legend | Axes | None = None
    right: Legend | Axes | None = None
    bar: float = 10.0
    bar_gap: float = 0.0


@dataclass
class _Edges:
    """Pixels taken from each edge of the figure so far."""

    left: float
    right: float
    bottom: float
    top: float


@dataclass
class _Track:
    """One grid row or column: room for decorations before and after its cells, and its weight."""

    before: float = 0.0
    after: float = 0.0
    weight: float = 1.0
    start: float = 0.0
    size: float = 0.0


@dataclass
class _Grid:
    columns: list[_Track] = field(default_factory=list)
    rows: list[_Track] = field(default_factory=list)  # top to bottom


def arrange(
    figure: Figure, frame: Frame, renderer: RendererBase, *, pad: float, gap: float
) -> None:
    """Place the panels of `figure` and the pieces of `frame`, `pad` points from the edges.

    Panels are the Axes made on the figure's grid (`Figure.subplots`), and
    neighbouring pieces stay `gap` points apart. Around the panels, from each
    edge inwards: the title on top; the bottom piece, then the shared x label
    below; the right piece on the right; the shared y label on the left.
    """
    to_pixels = figure.dpi / 72
    pad_px, gap_px = pad * to_pixels, gap * to_pixels
    edges = _Edges(pad_px, pad_px, pad_px, pad_px)
    if frame.title is not None:
        _place_title(figure, frame.title, pad_px)
        # A wider gap under the figure's title, so it does not read as the
        # top panel's title.
        edges.top += _extent(frame.title, renderer).height + TITLE_GAP * gap_px
    bottom_at = edges.bottom
    bar_gap = gap_px + frame.bar_gap * to_pixels
    edges.bottom += _band(figure, frame.bottom, frame.bar, "bottom", renderer, gap_px, bar_gap)
    xlabel_at = edges.bottom
    if frame.xlabel is not None:
        edges.bottom += _extent(frame.xlabel, renderer).height + gap_px
    right_at = edges.right
    edges.right += _band(figure, frame.right, frame.bar, "right", renderer, gap_px, bar_gap)
    ylabel_at = edges.left
    if frame.ylabel is not None:
        edges.left += _extent(frame.ylabel, renderer).width + gap_px
    bars = [piece for piece in (frame.bottom, frame.right) if isinstance(piece, Axes)]
    panels = [ax for ax in figure.axes if ax.get_subplotspec() is not None and ax not in bars]
    area = _place_panels(figure, panels, edges, renderer, gap_px)
    if any(ax.child_axes for ax in panels):
        # Inset colorbars scale with their panel: measure again at the final size.
        area = _place_panels(figure, panels, edges, renderer, gap_px)
    _place_shared_labels(figure, frame, area, xlabel_at, ylabel_at)
    _place_bottom(figure, frame.bottom, bottom_at, area, renderer)
    _place_right(figure, frame.right, right_at, area, renderer)


def _extent(artist: Text | Legend, renderer: RendererBase) -> Bbox:
    return artist.get_window_extent(renderer)


def _place_title(figure: Figure, title: Text, top: float) -> None:
    title.set_verticalalignment("top")
    title.set_y(1 - top / figure.bbox.height)


def _band(
    figure: Figure,
    piece: Legend | Axes | None,
    bar: float,
    edge: str,
    renderer: RendererBase,
    gap: float,
    bar_gap: float,
) -> float:
    """Pixels that `piece` needs at the bottom or right edge, gap to the panels included."""
    if piece is None:
        return 0.0
    if isinstance(piece, Legend):
        box = _extent(piece, renderer)
        return (box.height if edge == "bottom" else box.width) + gap
    thickness = bar * figure.dpi / 72
    # Measure the bar's ticks and label with the bar roughly where it will be.
    _set_bar(figure, piece, edge, Bbox.from_bounds(0, 0, 100, 100), thickness)
    _, right, below, _ = _outside(piece, renderer)
    return thickness + (below if edge == "bottom" else right) + bar_gap


def _set_bar(figure: Figure, bar: Axes, edge: str, area: Bbox, thickness: float) -> None:
    """A colorbar Axes along `area` (pixels), its short side `thickness` pixels."""
    if edge == "bottom":
        box = Bbox.from_bounds(area.x0, area.y0, area.width, thickness)
    else:
        box = Bbox.from_bounds(area.x0, area.y0, thickness, area.height)
    bar.set_position(_fraction(figure, box))


def _outside(ax: Axes, renderer: RendererBase) -> tuple[float, float, float, float]:
    """Pixels that an Axes' decorations reach past its left, right, bottom and top."""
    box = ax.get_window_extent(renderer)
    tight = ax.get_tightbbox(renderer, bbox_extra_artists=ax.child_axes, for_layout_only=True)
    _pin_axis_labels(ax, box)
    if tight is None:
        return 0.0, 0.0, 0.0, 0.0
    return (
        max(0.0, box.x0 - tight.x0),
        max(0.0, tight.x1 - box.x1),
        max(0.0, box.y0 - tight.y0),
        max(0.0, tight.y1 - box.y1),
    )


def _pin_axis_labels(ax: Axes, box: Bbox) -> None:
    """Keep each axis label where matplotlib just put it, relative to its side of the Axes.

    matplotlib places an axis label past the tick labels by measuring them
    again at every draw; they no longer change once measured here (ticks
    have explicit counts), so the label keeps its offset from the spine.
    Not for Axes that adjust their data limits to an aspect ratio at draw
    time: their tick labels may still change.
    """
    if ax.get_aspect() != "auto" and ax.get_adjustable() == "datalim":
        return
    figure = ax.get_figure(root=True)
    assert figure is not None
    for axis in (ax.xaxis, ax.yaxis):
        label = axis.label
        if not label.get_visible() or not label.get_text():
            continue
        x, y = label.get_transform().transform(label.get_position())
        far = axis.get_label_position() in ("top", "right")
        if axis is ax.yaxis:
            inches = (x - (box.x1 if far else box.x0)) / figure.dpi
            anchor, shift = (float(far), 0.5), (inches, 0.0)
        else:
            inches = (y - (box.y1 if far else box.y0)) / figure.dpi
            anchor, shift = (0.5, float(far)), (0.0, inches)
        offset = ScaledTranslation(*shift, figure.dpi_scale_trans)
        axis.set_label_coords(*anchor, transform=ax.transAxes + offset)


def _place_panels(
    figure: Figure, panels: list[Axes], edges: _Edges, renderer: RendererBase, gap: float
) -> Bbox:
    """Set every panel's position; the box (pixels) the panels span, decorations excluded."""
    width, height = figure.bbox.width, figure.bbox.height
    if not panels:
        return Bbox.from_extents(edges.left, edges.bottom, width - edges.right, height - edges.top)
    grid = _measure_grid(panels, renderer)
    _size_tracks(grid.columns, edges.left, width - edges.right, gap)
    _size_tracks(grid.rows, edges.top, height - edges.bottom, gap)
    for ax in panels:
        spec = ax.get_subplotspec()
        assert spec is not None
        ax.set_position(_fraction(figure, _cell(grid, spec.rowspan, spec.colspan, height)))
    return _cell(grid, range(len(grid.rows)), range(len(grid.columns)), height)


def _cell(grid: _Grid, rows: range, columns: range, height: float) -> Bbox:
    """The pixel box of the cells in `rows` x `columns` (rows count from the top)."""
    first, last = grid.columns[columns.start], grid.columns[columns.stop - 1]
    top, bottom = grid.rows[rows.start], grid.rows[rows.stop - 1]
    return Bbox.from_extents(
        first.start,
        height - (bottom.start + bottom.size),
        last.start + last.size,
        height - top.start,
    )


def _measure_grid(panels: list[Axes], renderer: RendererBase) -> _Grid:
    spec = panels[0].get_subplotspec()
    assert spec is not None
    gridspec = spec.get_gridspec()
    rows, cols = gridspec.get_geometry()
    widths = gridspec.get_width_ratios() or [1.0] * cols
    heights = gridspec.get_height_ratios() or [1.0] * rows
    grid = _Grid(
        columns=[_Track(weight=float(width)) for width in np.asarray(widths).ravel()],
        rows=[_Track(weight=float(height)) for height in np.asarray(heights).ravel()],
    )
    for ax in panels:
        spec = ax.get_subplotspec()
        assert spec is not None
        left, right, below, above = _outside(ax, renderer)
        first_col, last_col = grid.columns[spec.colspan.start], grid.columns[spec.colspan.stop - 1]
        top_row, bottom_row = grid.rows[spec.rowspan.start], grid.rows[spec.rowspan.stop - 1]
        first_col.before = max(first_col.before, left)
        last_col.after = max(last_col.after, right)
        top_row.before = max(top_row.before, above)
        bottom_row.after = max(bottom_row.after, below)
    return grid


def _size_tracks(tracks: list[_Track], start: float, stop: float, gap: float) -> None:
    """Share the span from `start` to `stop` between the tracks' cells by weight."""
    decorations = sum(track.before + track.after for track in tracks) + gap * (len(tracks) - 1)
    free = max(stop - start - decorations, MIN_PANEL_FRACTION * (stop - start))
    total_weight = sum(track.weight for track in tracks)
    position = start
    for track in tracks:
        track.start = position + track.before
        track.size = free * track.weight / total_weight
        position = track.start + track.size + track.after + gap


def _place_shared_labels(
    figure: Figure, frame: Frame, area: Bbox, xlabel_at: float, ylabel_at: float
) -> None:
    width, height = figure.bbox.width, figure.bbox.height
    if frame.xlabel is not None:
        frame.xlabel.set_horizontalalignment("center")
        frame.xlabel.set_verticalalignment("bottom")
        frame.xlabel.set_position(((area.x0 + area.width / 2) / width, xlabel_at / height))
    if frame.ylabel is not None:
        frame.ylabel.set_horizontalalignment("left")
        frame.ylabel.set_verticalalignment("center")
        frame.ylabel.set_position((ylabel_at / width, (area.y0 + area.height / 2) / height))


def _place_bottom(
    figure: Figure,
    piece: Legend | Axes | None,
    bottom: float,
    area: Bbox,
    renderer: RendererBase,
) -> None:
    if isinstance(piece, Legend):
        piece.set_bbox_to_anchor((0.5, bottom / figure.bbox.height), transform=figure.transFigure)
    elif isinstance(piece, Axes):
        thickness = piece.get_window_extent(renderer).height
        below = _outside(piece, renderer)[2]
        _set_bar(
            figure,
            piece,
            "bottom",
            Bbox.from_bounds(area.x0, bottom + below, area.width, 0),
            thickness,
        )


def _place_right(
    figure: Figure,
    piece: Legend | Axes | None,
    right: float,
    area: Bbox,
    renderer: RendererBase,
) -> None:
    width = figure.bbox.width
    if isinstance(piece, Legend):
        anchor = (1 - right / width, (area.y0 + area.height / 2) / figure.bbox.height)
        piece.set_bbox_to_anchor(anchor, transform=figure.transFigure)
    elif isinstance(piece, Axes):
        thickness = piece.get_window_extent(renderer).width
        beyond = _outside(piece, renderer)[1]
        x0 = width - right - beyond - thickness
        _set_bar(figure, piece, "right", Bbox.from_bounds(x0, area.y0, 0, area.height), thickness)


def _fraction(figure: Figure, box: Bbox) -> Bbox:
    """A box in pixels as figure fractions, the unit of `Axes.set_position`."""
    width, height = figure.bbox.width, figure.bbox.height
    return Bbox.from_extents(box.x0 / width, box.y0 / height, box.x1 / width, box.y1 / height)


class InViewLocator(MaxNLocator):
    """MaxNLocator without the ticks just past the view, which are never drawn.

    matplotlib builds a tick (two lines and two labels) for every location a
    locator returns, and MaxNLocator returns one more on each side of the view.
    """

    def __call__(self) -> Sequence[float]:
        return _in_view(self.axis, super().__call__())


class InViewLogLocator(LogLocator):
    """LogLocator without the decades past the view (see `InViewLocator`)."""

    def __call__(self) -> Sequence[float]:
        return _in_view(self.axis, super().__call__())


def _in_view(axis: Any, locations: Sequence[float]) -> list[float]:
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * (high - low)
    return [location for location in locations if low - slack <= location <= high + slack]
