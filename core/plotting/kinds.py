"""One record per plot kind, and the catalog that renders them.

A `PlotKind` says everything the rest of the service needs about a plot: its
name (the URL's), a description (the API's), what it needs from the numbers it
is drawn from and why it is unavailable without them (a `Need`), how it draws, and
whether the worker draws it as a job ends. A `PlotCatalog` holds the kinds of
one subject (an experiment's result, a study's series) in the order clients
see them; `core.plotting.catalog` lists both.

Rendering uses matplotlib's object API on an Agg canvas (no pyplot, no
rcParams changes) and returns PNG bytes of exactly the asked pixel size; the
same numbers and size always give the same bytes. Panels sit in fixed margins
measured once (`core.plotting.layout`) on the text-caching canvas
(`core.plotting.canvas`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.plotting.canvas import render_png, shared_renderer
from core.plotting.layout import Frame, arrange
from core.plotting.style import Style, new_figure

if TYPE_CHECKING:
    from core.experiment.spec import ExperimentSpec

Data = Mapping[str, Any]
Drawer = Callable[[Figure, Data, Style], Frame]


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


class RenderSize(TypedDict, total=False):
    """The size a plot is rendered at where not `PlotSize`'s default: pixels wide and
    high, and dots per inch."""

    width: int
    height: int
    dpi: int


@dataclass(frozen=True)
class Need:
    """What a plot needs from the numbers it is drawn from, and why it is unavailable
    without it.

    Args:
        has: whether the numbers (a result, a study's series) have what the plot draws.
        missing: why the plot is unavailable when `has` is false ("gradients were not
            captured").
        planned: for a study's plot, whether a study of these child specs will have it.
    """

    has: Callable[[Data], bool]
    missing: str
    planned: Callable[[Sequence[ExperimentSpec]], bool] | None = None


@dataclass(frozen=True)
class PlotKind:
    """One plot: what it is called and shows, what it needs, and how it draws.

    Args:
        name: its name in URLs (`/plots/{name}.png`).
        description: one line for the API's list of plots.
        need: what it needs from the numbers, and why it is unavailable without it.
        draw: fills a figure from the numbers and returns the pieces around its panels.
        eager: an experiment's plot drawn at the default size as the run ends, not on
            first request (a study draws all of its plots as it ends).
        after_layout: a last touch once the panels are placed (equal aspect, ...).
    """

    name: str
    description: str
    need: Need
    draw: Drawer
    eager: bool = False
    after_layout: Callable[[Figure], None] | None = None


class UnknownPlotError(KeyError):
    """A plot name that its catalog does not have."""

    def __init__(self, name: str, choices: Sequence[str]) -> None:
        super().__init__(f"unknown plot {name!r}; choose one of {', '.join(choices)}")
        self.name = name
        self.choices = tuple(choices)

    def __str__(self) -> str:
        # KeyError would quote the whole message; show it as written.
        return str(self.args[0])


class PlotUnavailableError(ValueError):
    """A known plot that these numbers have nothing for (e.g. no boundary)."""

    def __init__(self, kind: PlotKind, subject: str) -> None:
        super().__init__(
            f"plot {kind.name!r} is not available for this {subject}: {kind.need.missing}"
        )
        self.name = kind.name


class PlotSizeError(ValueError):
    """A width, height or dpi outside `PlotSize`; names the parameter and its limit."""

    def __init__(self, parameter: str, message: str, limit: int | None = None) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.limit = limit


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


# Matplotlib documents itself as not thread-safe: its font cache (FT2Font
# objects) is process-wide, and so are the renderer and rasterized text that
# `core.plotting.canvas` keeps between renders. Text is also measured outside
# `draw` (the layout, legends). Building and drawing is Python holding the GIL
# anyway (two threads without the lock were no faster than with it), so one
# lock around a whole build and draw, for every catalog, costs no throughput
# and makes concurrent renders safe and byte-identical to serial ones.
_RENDER_LOCK = threading.Lock()


class PlotCatalog:
    """The plot kinds of one subject, in the order they are listed.

    Args:
        subject: what the numbers are, for messages ("result", "study").
        kinds: the plots, each name once.
        before_layout: a touch every figure gets before its panels are placed.
    """

    def __init__(
        self,
        subject: str,
        kinds: Sequence[PlotKind],
        *,
        before_layout: Callable[[Figure], None] | None = None,
    ) -> None:
        self.subject = subject
        self.kinds = tuple(kinds)
        self.names = tuple(kind.name for kind in self.kinds)
        assert len(set(self.names)) == len(self.names), f"a plot name twice: {self.names}"
        self._by_name = {kind.name: kind for kind in self.kinds}
        self._before_layout = before_layout

    def __getitem__(self, name: str) -> PlotKind:
        """The kind called `name`; UnknownPlotError (a KeyError) for another name."""
        kind = self._by_name.get(name)
        if kind is None:
            raise UnknownPlotError(name, self.names)
        return kind

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def available(self, data: Data) -> list[str]:
        """The plots these numbers have what they need for, in catalog order."""
        return [kind.name for kind in self.kinds if kind.need.has(data)]

    def render(self, name: str, data: Data, **size: Unpack[RenderSize]) -> bytes:
        """A PNG of plot `name` for `data`, exactly `width` x `height` pixels (each size
        `PlotSize`'s default where `size` does not name it).

        Raises:
            UnknownPlotError (a KeyError): `name` is not in the catalog.
            PlotSizeError (a ValueError): a size is outside `PlotSize`.
            PlotUnavailableError (a ValueError): the numbers lack what the plot needs.
        """
        kind, pixels = self._checked(name, data, size)
        with _RENDER_LOCK:
            # Not savefig: it would read rcParams such as savefig.bbox="tight",
            # which changes the pixel size.
            return render_png(self._build(kind, data, *pixels))

    def build_figure(self, name: str, data: Data, **size: Unpack[RenderSize]) -> Figure:
        """The matplotlib Figure behind `render`, for other formats or inspection.

        Draw it from one thread at a time; `render` is the thread-safe entry.
        """
        kind, pixels = self._checked(name, data, size)
        with _RENDER_LOCK:
            figure = self._build(kind, data, *pixels)
        # Its own canvas, so that drawing it later never touches the shared renderer.
        FigureCanvasAgg(figure)
        return figure

    def _checked(
        self, name: str, data: Data, size: RenderSize
    ) -> tuple[PlotKind, tuple[int, int, int]]:
        """The kind called `name` and the (width, height, dpi) it is drawn at: `size`, with
        `PlotSize`'s defaults where it names none."""
        unknown = sorted(size.keys() - RenderSize.__optional_keys__)
        if unknown:  # what a misspelled keyword argument raised before sizes were one
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        kind = self[name]
        width = size.get("width", PlotSize.WIDTH)
        height = size.get("height", PlotSize.HEIGHT)
        dpi = size.get("dpi", PlotSize.DPI)
        check_plot_size(width=width, height=height, dpi=dpi)
        if not kind.need.has(data):
            raise PlotUnavailableError(kind, self.subject)
        return kind, (width, height, dpi)

    def _build(self, kind: PlotKind, data: Data, width: int, height: int, dpi: int) -> Figure:
        style = Style.for_size(width, height, dpi)
        figure = new_figure(width, height, dpi)
        frame = kind.draw(figure, data, style)
        if self._before_layout is not None:
            self._before_layout(figure)
        # No layout engine: constrained layout measured every panel twice per
        # draw, most of a render. Fixed margins are measured once, with the
        # renderer that then draws (its text measures are cached for the draw).
        renderer = shared_renderer(width, height, dpi)
        arrange(figure, frame, renderer, pad=style.pt(4.0), gap=style.pt(5.0))
        if kind.after_layout is not None:
            kind.after_layout(figure)
        return figure
