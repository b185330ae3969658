"""Fixed margins: every panel, label, legend and bar inside the figure, none on another."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from core.plotting.layout import MIN_PANEL_FRACTION, Frame, arrange

PAD, GAP = 4.0, 4.0  # points


def make_figure(width: int = 900, height: int = 600, dpi: int = 100) -> Figure:
    return Figure(figsize=(width / dpi, height / dpi), dpi=dpi)


def renderer_for(figure: Figure) -> RendererAgg:
    return RendererAgg(figure.bbox.width, figure.bbox.height, figure.dpi)


def decorate(ax: Axes, index: int) -> None:
    """A panel with a title, both axis labels and tick labels of some width."""
    ax.plot([0, 10], [0, 10 ** (index + 1)])
    ax.set_title(f"panel {index}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("value")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=5))  # not from the Axes' size


def extents(figure: Figure, renderer: RendererAgg) -> list[Bbox]:
    return [
        ax.get_tightbbox(renderer, bbox_extra_artists=ax.child_axes)  # type: ignore[misc]
        for ax in figure.axes
    ]


def assert_inside(box: Bbox, figure: Figure, margin: float = 1.0) -> None:
    assert box.x0 >= -margin and box.y0 >= -margin, box
    assert box.x1 <= figure.bbox.width + margin and box.y1 <= figure.bbox.height + margin, box


def assert_apart(boxes: list[Bbox]) -> None:
    for one, other in combinations(boxes, 2):
        overlap_x = min(one.x1, other.x1) - max(one.x0, other.x0)
        overlap_y = min(one.y1, other.y1) - max(one.y0, other.y0)
        assert overlap_x <= 1 or overlap_y <= 1, (one, other)


@pytest.mark.parametrize(("width", "height", "dpi"), [(900, 600, 100), (500, 800, 150)])
def test_a_grid_with_a_title_and_a_legend_below_fits_without_overlaps(
    width: int, height: int, dpi: int
) -> None:
    figure = make_figure(width, height, dpi)
    for index, ax in enumerate(figure.subplots(2, 2).ravel()):
        decorate(ax, index)
    title = figure.suptitle("A title")
    legend = figure.legend(["a", "b"], loc="lower center", ncols=2, borderaxespad=0)
    renderer = renderer_for(figure)
    arrange(figure, Frame(title=title, bottom=legend), renderer, pad=PAD, gap=GAP)
    boxes = extents(figure, renderer)
    pieces = [title.get_window_extent(renderer), legend.get_window_extent(renderer)]
    for box in boxes + pieces:
        assert_inside(box, figure)
    assert_apart(boxes + pieces)
    panel_tops = max(ax.get_window_extent().y1 for ax in figure.axes)
    panel_bottoms = min(box.y0 for box in boxes)
    assert pieces[0].y0 >= panel_tops  # the title over the panels
    assert pieces[1].y1 <= panel_bottoms  # the legend under them


def test_the_decorations_reach_the_pad_on_every_side() -> None:
    figure = make_figure()
    ax = figure.subplots()
    decorate(ax, 3)
    renderer = renderer_for(figure)
    arrange(figure, Frame(), renderer, pad=PAD, gap=GAP)
    box = extents(figure, renderer)[0]
    pad = PAD * figure.dpi / 72
    assert box.x0 == pytest.approx(pad, abs=1)
    assert box.y0 == pytest.approx(pad, abs=1)
    assert figure.bbox.height - box.y1 == pytest.approx(pad, abs=1)
    # The rightmost tick label reaches past the panel; nothing else does.
    assert figure.bbox.width - box.x1 == pytest.approx(pad, abs=1)


def test_a_legend_on_the_right_and_shared_labels_take_bands_of_their_own() -> None:
    figure = make_figure()
    for index, ax in enumerate(figure.subplots(2, 3).ravel()):
        decorate(ax, index)
        ax.set_xlabel("")
        ax.set_ylabel("")
    legend = figure.legend(["1", "26", "50"], loc="center right", borderaxespad=0)
    frame = Frame(
        title=figure.suptitle("distributions"),
        xlabel=figure.supxlabel("kernel gradient"),
        ylabel=figure.supylabel("fraction"),
        right=legend,
    )
    renderer = renderer_for(figure)
    arrange(figure, frame, renderer, pad=PAD, gap=GAP)
    boxes = extents(figure, renderer)
    assert frame.xlabel is not None and frame.ylabel is not None
    pieces = [
        legend.get_window_extent(renderer),
        frame.xlabel.get_window_extent(renderer),
        frame.ylabel.get_window_extent(renderer),
    ]
    for box in boxes + pieces:
        assert_inside(box, figure)
    assert_apart(boxes + pieces)
    assert pieces[0].x0 >= max(box.x1 for box in boxes)  # legend right of the panels
    assert pieces[1].y1 <= min(box.y0 for box in boxes)  # x label under them
    assert pieces[2].x1 <= min(box.x0 for box in boxes)  # y label left of them


@pytest.mark.parametrize("edge", ["bottom", "right"])
def test_a_colorbar_axes_spans_the_panels_at_its_thickness(edge: str) -> None:
    figure = make_figure()
    panels = figure.subplots(1, 3)
    for index, ax in enumerate(panels):
        decorate(ax, index)
    bar = figure.add_axes((0, 0, 1, 1))
    orientation = "horizontal" if edge == "bottom" else "vertical"
    figure.colorbar(ScalarMappable(), cax=bar, orientation=orientation)
    frame = Frame(bottom=bar, bar=8.0) if edge == "bottom" else Frame(right=bar, bar=8.0)
    renderer = renderer_for(figure)
    arrange(figure, frame, renderer, pad=PAD, gap=GAP)
    box = bar.get_window_extent(renderer)
    thickness = 8.0 * figure.dpi / 72
    first, last = panels[0].get_window_extent(), panels[-1].get_window_extent()
    if edge == "bottom":
        assert box.height == pytest.approx(thickness)
        assert (box.x0, box.x1) == pytest.approx((first.x0, last.x1))
    else:
        assert box.width == pytest.approx(thickness)
        assert (box.y0, box.y1) == pytest.approx((first.y0, first.y1))
    boxes = extents(figure, renderer)
    for one in boxes:
        assert_inside(one, figure)
    assert_apart(boxes)


def test_width_ratios_share_the_room_left_for_panels() -> None:
    figure = make_figure()
    wide, narrow = figure.subplots(1, 2, width_ratios=(3, 1))
    for index, ax in enumerate((wide, narrow)):
        decorate(ax, index)
    arrange(figure, Frame(), renderer_for(figure), pad=PAD, gap=GAP)
    ratio = wide.get_position().width / narrow.get_position().width
    assert ratio == pytest.approx(3.0)


def test_panels_keep_a_minimum_size_when_text_outgrows_the_figure() -> None:
    figure = make_figure(160, 120, 100)
    ax = figure.subplots()
    decorate(ax, 0)
    ax.set_ylabel("a label far too long for a figure this small " * 3, fontsize=30)
    ax.set_title("and a title as tall as the figure", fontsize=60)
    arrange(figure, Frame(), renderer_for(figure), pad=PAD, gap=GAP)
    position = ax.get_position()
    assert position.width >= MIN_PANEL_FRACTION * 0.9
    assert position.height >= MIN_PANEL_FRACTION * 0.5
    assert np.isfinite(position.get_points()).all()


def test_an_inset_colorbar_is_measured_with_its_panel() -> None:
    figure = make_figure()
    ax = figure.subplots()
    decorate(ax, 0)
    image = ax.imshow(np.arange(12.0).reshape(3, 4), extent=(0, 10, 0, 10), aspect="auto")
    figure.colorbar(image, cax=ax.inset_axes((1.03, 0.0, 0.035, 1.0))).set_label("a bar label")
    renderer = renderer_for(figure)
    arrange(figure, Frame(), renderer, pad=PAD, gap=GAP)
    inset = ax.child_axes[0].get_tightbbox(renderer)
    assert inset is not None
    assert_inside(inset, figure)
    assert figure.bbox.width - inset.x1 == pytest.approx(PAD * figure.dpi / 72, abs=2)
