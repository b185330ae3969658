"""A grid of framed panels copied from a kept template instead of built Axes by Axes.

Making an Axes (spines, axes, their first ticks, titles) and then its ticks
(five artists each, every one reading its defaults from rcParams) was about a
third of drawing the tutorial's two plots, the same work for every job. So a
grid of panels is made once per process for each figure size, grid and
framing: made, framed by `prepare` (tick sizes, grid lines) and given
`PRECREATED_TICKS` major ticks per axis, then pickled. Each later figure
unpickles that state into itself, which is a plain copy of those objects with
none of the defaults looked up again; a figure drawn this way gives the same
PNG bytes as one built directly.

The templates are shared state: callers hold the render lock of
`core.plotting.kinds`, as for every other part of a render.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Major ticks made per axis in a template: a panel's locators give up to 10
# (`tick_locator`), most give 5-8; an axis that needs more makes the rest as usual.
PRECREATED_TICKS = 8
# Templates kept, least recently used dropped first: a few hundred kB each; the
# worker asks for one size, the API for whatever sizes its clients ask.
MAX_TEMPLATES = 16

_templates: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()


def clear_templates() -> None:
    """Forget every kept template, as in a fresh process."""
    _templates.clear()


def panel_grid(
    figure: Figure,
    rows: int,
    cols: int,
    *,
    sharex: bool,
    prepare: Callable[[Axes], None],
    key: Hashable,
) -> np.ndarray:
    """`figure.subplots(rows, cols, sharex=sharex, squeeze=False)` with `prepare(ax)`
    applied to each panel, copied from a template.

    `key` names what `prepare` does (the same key, the same framing). A figure
    that already holds anything gets its panels built directly.
    """
    if figure.get_children() != [figure.patch] or MAX_TEMPLATES < 1:
        return _build(figure, rows, cols, sharex=sharex, prepare=prepare)
    width, height = figure.get_size_inches()
    template_key = (float(width), float(height), float(figure.dpi), rows, cols, sharex, key)
    blob = _templates.get(template_key)
    if blob is None:
        blob = _templates[template_key] = _template(figure, rows, cols, sharex, prepare)
        if len(_templates) > MAX_TEMPLATES:
            _templates.popitem(last=False)
    _templates.move_to_end(template_key)
    # The template's state becomes this figure's: every reference to the
    # template figure inside it now points at `figure`.
    state = _Unpickler(io.BytesIO(blob), figure).load()
    figure.__setstate__(state)  # type: ignore[attr-defined]  # matplotlib's stubs omit it
    return _as_grid(figure.axes, rows, cols)


def _build(
    figure: Figure, rows: int, cols: int, *, sharex: bool, prepare: Callable[[Axes], None]
) -> np.ndarray:
    grid = figure.subplots(rows, cols, sharex=sharex, squeeze=False)
    for ax in grid.ravel():
        prepare(ax)
    return grid


def _template(
    figure: Figure, rows: int, cols: int, sharex: bool, prepare: Callable[[Axes], None]
) -> bytes:
    """The pickled state of an empty figure like `figure` with the framed panels."""
    width, height = figure.get_size_inches()
    template = Figure(figsize=(float(width), float(height)), dpi=figure.dpi)
    for ax in _build(template, rows, cols, sharex=sharex, prepare=prepare).ravel():
        for axis in (ax.xaxis, ax.yaxis):
            axis.get_major_ticks(PRECREATED_TICKS)
    buffer = io.BytesIO()
    _Pickler(buffer, template).dump(template.__getstate__())
    return buffer.getvalue()


def _as_grid(axes: list[Axes], rows: int, cols: int) -> np.ndarray:
    grid = np.empty((rows, cols), dtype=object)
    for ax in axes:
        spec = ax.get_subplotspec()
        assert spec is not None
        grid[spec.rowspan.start, spec.colspan.start] = ax
    return grid


class _Pickler(pickle.Pickler):
    """Pickles a figure's state with the figure itself left as a reference."""

    def __init__(self, file: io.BytesIO, figure: Figure) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._figure = figure

    def persistent_id(self, obj: Any) -> str | None:
        return "figure" if obj is self._figure else None


class _Unpickler(pickle.Unpickler):
    """Loads a `_Pickler`'s state with that reference pointing at `figure`."""

    def __init__(self, file: io.BytesIO, figure: Figure) -> None:
        super().__init__(file)
        self._figure = figure

    def persistent_load(self, pid: Any) -> Figure:
        if pid != "figure":
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return self._figure
