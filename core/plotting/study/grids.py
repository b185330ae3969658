"""A study's small multiples, one panel per configuration.

gradient_flow   each configuration's log10 gradient norm, layer by epoch, one
                heatmap each on one color scale
boundary        each configuration's decision surface, side by side (2-D data)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, Normalize, to_hex
from matplotlib.figure import Figure

from core.plotting.kinds import Need, PlotKind
from core.plotting.layout import Frame
from core.plotting.study.axes import (
    MAX_PANELS,
    cell_size,
    finite_floats,
    grid_columns,
    panel_grid,
    style_axes,
    style_frame,
    suptitle,
    tick_locator,
    wrapped,
)
from core.plotting.study.series import any_config_has, captures_gradients, planar, stack_rows
from core.plotting.style import HEATMAP_COLORMAP, MISSING_COLOR, Style, as_floats, note

_FLOW_BAR_PT = 90.0  # the colorbar's band right of the heatmaps, ticks and label included


def _draw_flow(figure: Figure, series: Mapping[str, Any], style: Style) -> Frame:
    every = [c for c in series["configs"] if c.get("flow")]
    configs = every[:MAX_PANELS]
    grids = [np.ma.masked_invalid(stack_rows([finite_floats(r) for r in c["flow"]["log10_norm"]]))
             for c in configs]  # fmt: skip
    finite = [g.compressed() for g in grids if g.count()]
    low = float(min(v.min() for v in finite)) if finite else 0.0
    high = float(max(v.max() for v in finite)) if finite else 1.0
    norm = Normalize(vmin=low, vmax=high if high > low else low + 1.0)
    cmap = matplotlib.colormaps[HEATMAP_COLORMAP].with_extremes(bad=MISSING_COLOR)
    image = None
    axes = panel_grid(figure, len(configs), aspect=1.4)
    # What a panel's title may span: its share of the figure less the colorbar's band.
    title_pt = (style.width_pt - style.pt(_FLOW_BAR_PT)) / grid_columns(axes) - style.pt(5.0)
    for ax, config, grid in zip(axes, configs, grids, strict=True):
        flow = config["flow"]
        x = as_floats(flow["x"])
        left, right = (x[0] - 0.5, x[-1] + 0.5) if x.size else (0.5, 1.5)
        image = ax.imshow(grid, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest",
                          extent=(left, right, len(flow["layers"]) - 0.5, -0.5))  # fmt: skip
        title = wrapped(figure, str(config["label"]), title_pt, style.pt(10.0))
        style_axes(ax, style, title, xlabel="epoch", grid=False)
        # The layer names take about 45 points of a cell's width.
        across, up = cell_size(ax, style, reserved=style.pt(_FLOW_BAR_PT))
        epochs = tick_locator(across - style.pt(45.0), style, across=True, integer=True)
        ax.xaxis.set_major_locator(epochs)
        if len(flow["layers"]) <= 12:
            ax.set_yticks(range(len(flow["layers"])), flow["layers"], fontsize=style.pt(7.0))
        else:
            ax.yaxis.set_major_locator(tick_locator(0.8 * up, style, across=False, integer=True))
    frame = Frame(title=suptitle(figure, "Gradient flow", len(configs), len(every), style))
    if image is not None:
        cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
        colorbar = figure.colorbar(image, cax=cax)
        colorbar.set_label("log10 ‖∇W‖ (grey: zero or not finite)", fontsize=style.pt(9.0))
        colorbar.ax.tick_params(labelsize=style.pt(8.0))
        colorbar.locator = tick_locator(0.8 * style.height_pt, style, across=False)
        frame.right, frame.bar, frame.bar_gap = cax, style.pt(14.0), style.pt(18.0)
    return frame


def _draw_boundary(figure: Figure, series: Mapping[str, Any], style: Style) -> Frame:
    every = [c for c in series["configs"] if c.get("boundary")]
    configs = every[:MAX_PANELS]
    # Square cells: a surface is drawn at equal aspect, and a cell of another
    # shape leaves part of itself empty.
    axes = panel_grid(figure, len(configs), aspect=1.0)
    title_pt = style.width_pt / grid_columns(axes) - style.pt(5.0)
    class_cmap = matplotlib.colormaps["tab10"]
    two = LinearSegmentedColormap.from_list(
        "gradwatch_study_two_classes", [to_hex(class_cmap(0)), "#ffffff", to_hex(class_cmap(1))]
    )
    for ax, config in zip(axes, configs, strict=True):
        boundary = config["boundary"]
        gx, gy = finite_floats(boundary["x"]), finite_floats(boundary["y"])
        z = as_floats([[math.nan if v is None else v for v in row] for row in boundary["z"]])
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
            note(ax, "no finite predictions", style, size=9.0)
        points = boundary.get("points") or {}
        if points.get("x"):
            xy = as_floats(points["x"])
            labels = np.asarray(points["y"], dtype=np.int64)
            ax.scatter(xy[:, 0], xy[:, 1], c=class_cmap(labels % 10),
                       s=style.pt(6.0), linewidths=style.pt(0.3), edgecolors="white")  # fmt: skip
        accuracy = boundary.get("accuracy")
        title = wrapped(figure, str(config["label"]), title_pt, style.pt(10.0))
        if isinstance(accuracy, int | float):
            title += f"\naccuracy {accuracy:.3f}"
        ax.set_xticks([])
        ax.set_yticks([])
        style_frame(ax, style, title)
        if gx.size and gy.size:
            ax.set_xlim(float(gx[0]), float(gx[-1]))
            ax.set_ylim(float(gy[0]), float(gy[-1]))
    return Frame(
        title=suptitle(figure, "Decision surfaces (first seed)", len(configs), len(every), style)
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


GRADIENT_FLOW = PlotKind(
    name="gradient_flow",
    description="each configuration's log10 kernel gradient norm, layer by epoch",
    need=Need(any_config_has("flow"), "no child captured gradients", planned=captures_gradients),
    draw=_draw_flow,
)

BOUNDARY = PlotKind(
    name="boundary",
    description="each configuration's decision surface side by side (2-D data)",
    need=Need(
        any_config_has("boundary"),
        "decision surfaces are drawn for 2-D datasets only",
        planned=planar,
    ),
    draw=_draw_boundary,
    after_layout=_square_surfaces,
)
