"""The data and what the network made of it: the training points and the decision surface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LinearSegmentedColormap, ListedColormap
from matplotlib.figure import Figure

from core.plotting.experiment.axes import Result, run_label, style_axes, style_colorbar, suptitle
from core.plotting.kinds import Need, PlotKind
from core.plotting.layout import Frame
from core.plotting.style import (
    LAYER_COLORMAP,
    Color,
    Style,
    as_floats,
    class_colors,
    note,
    shape_text,
)


def _draw_dataset(figure: Figure, result: Result, style: Style) -> Frame:
    dataset = result["dataset"]
    points = dataset["points"]
    x = as_floats(points["x"]).reshape(len(points["x"]), -1)
    if x.shape[1] == 1:
        x = np.column_stack([x[:, 0], np.zeros(len(x))])
    ax = figure.subplots()
    frame = Frame(title=figure.suptitle(f"Dataset — {run_label(result)}", fontsize=style.title))
    if dataset.get("task") == "regression":
        # A target is a number, not a class: one color scale, keyed by a colorbar.
        targets = as_floats(points["y"])
        shown = ax.scatter(
            x[:, 0],
            x[:, 1],
            c=targets,
            cmap=LAYER_COLORMAP,
            s=_point_size(len(targets), style),
            alpha=0.85,
            edgecolors="none",
        )
        cax = figure.add_axes((0.0, 0.0, 1.0, 1.0))  # placed by the layout
        style_colorbar(figure.colorbar(shown, cax=cax), "target", style)
        frame.right, frame.bar, frame.bar_gap = cax, style.pt(14.0), style.pt(18.0)
        count = len(targets)
    else:
        labels = np.asarray(points["y"], dtype=np.int64)
        scatter_classes(ax, x, labels, _class_count(result, labels), style)
        ax.legend(fontsize=style.small, title="class", title_fontsize=style.small, markerscale=2)
        count = len(labels)
    pca = points.get("projection") == "pca"
    axis = "principal component" if pca else "feature"
    title = f"{count} training points"
    if pca:
        title += f", PCA projection of {_input_size(dataset)}"
    style_axes(ax, style, title=title, xlabel=f"{axis} 1", ylabel=f"{axis} 2")
    if not pca:
        ax.set_aspect("equal", adjustable="datalim")
    return frame


def _input_size(dataset: Mapping[str, Any]) -> str:
    """ "64 features", or a sequence's or an image's "30x2 inputs"."""
    shape = dataset.get("sample_shape") or []
    if len(shape) > 1:
        return shape_text(shape) + " inputs"
    return f"{dataset.get('n_features', '?')} features"


def _point_size(count: int, style: Style) -> float:
    return float(np.clip(6000 / max(count, 1), 3, 24)) * style.scale**2


def _class_count(result: Result, labels: np.ndarray) -> int:
    declared = int((result.get("dataset") or {}).get("n_classes") or 0)
    return max(declared, int(labels.max()) + 1 if labels.size else 0, 1)


def scatter_classes(
    ax: Axes, x: np.ndarray, labels: np.ndarray, classes: int, style: Style, *, edge: bool = False
) -> None:
    colors = class_colors(classes)
    size = _point_size(len(labels), style)
    for label in np.unique(labels):
        chosen = labels == label
        ax.scatter(
            x[chosen, 0],
            x[chosen, 1],
            s=size,
            color=colors[int(label) % len(colors)],
            label=f"{label}",
            alpha=0.85,
            edgecolors="#222222" if edge else "none",
            linewidths=style.pt(0.3) if edge else 0.0,
        )


def _draw_boundary(figure: Figure, result: Result, style: Style) -> Frame:
    boundary = result["boundary"]
    grid_x, grid_y = as_floats(boundary["x"]), as_floats(boundary["y"])
    surface = as_floats(boundary["z"])
    classes = int(boundary.get("classes") or 2)
    if surface.ndim == 3:  # per-class probabilities: show the predicted class
        surface = np.where(np.isfinite(surface).all(axis=2), np.nanargmax(surface, axis=2), np.nan)
    surface = np.ma.masked_invalid(surface)
    ax = figure.subplots()
    colors = class_colors(classes)
    if surface.count() == 0:
        note(ax, "no finite predictions", style)
    elif classes == 2:
        _binary_surface(figure, ax, grid_x, grid_y, surface, colors, style)
    else:
        cmap = ListedColormap(colors[:classes])
        levels = np.arange(classes + 1) - 0.5
        ax.contourf(grid_x, grid_y, surface, levels=levels, cmap=cmap, alpha=0.35)
    points = (result.get("dataset") or {}).get("points") or {}
    if points.get("projection", "raw") == "raw" and points.get("x"):
        x = as_floats(points["x"]).reshape(len(points["x"]), -1)
        labels = np.asarray(points["y"], dtype=np.int64)
        if x.shape[1] == 2:
            scatter_classes(ax, x, labels, classes, style, edge=True)
            ax.legend(fontsize=style.small, title="class", title_fontsize=style.small)
    if np.isfinite(grid_x).all() and np.isfinite(grid_y).all():
        ax.set_xlim(float(grid_x[0]), float(grid_x[-1]))
        ax.set_ylim(float(grid_y[0]), float(grid_y[-1]))
    ax.set_aspect("equal", adjustable="box")  # circles should look round
    style_axes(ax, style, title=_boundary_title(result), xlabel="feature 1", ylabel="feature 2")
    ax.grid(False)
    return Frame(title=suptitle(figure, result, "Decision surface", style))


def _binary_surface(
    figure: Figure,
    ax: Axes,
    grid_x: np.ndarray,
    grid_y: np.ndarray,
    surface: np.ma.MaskedArray,
    colors: Sequence[Color],
    style: Style,
) -> None:
    """Probability of class 1 from class 0's color through white to class 1's."""
    cmap: Colormap = LinearSegmentedColormap.from_list(
        "gradwatch_two_classes", [colors[0], "#ffffff", colors[1]]
    )
    filled = ax.contourf(
        grid_x, grid_y, surface, levels=np.linspace(0.0, 1.0, 11), cmap=cmap, alpha=0.55
    )
    if surface.min() < 0.5 < surface.max():
        ax.contour(
            grid_x, grid_y, surface, levels=[0.5], colors="#222222", linewidths=style.pt(1.2)
        )
    # An inset, not a layout slot: it follows the axes that equal aspect
    # shrinks, instead of staying at the edge of the space the axes had.
    colorbar = figure.colorbar(filled, cax=ax.inset_axes((1.03, 0.0, 0.035, 1.0)))
    style_colorbar(colorbar, "predicted probability of class 1", style)


def _boundary_title(result: Result) -> str:
    after = (result.get("metrics") or {}).get("after") or {}
    accuracy = after.get("accuracy")
    if isinstance(accuracy, int | float):
        return f"after training (training accuracy {accuracy:.3f})"
    return "after training"


def _has_points(result: Result) -> bool:
    points = (result.get("dataset") or {}).get("points") or {}
    return bool(points.get("x")) and points.get("y") is not None


DATASET = PlotKind(
    name="dataset",
    description="the training data as a scatter, colored by class (PCA projection past 2 features)",
    need=Need(_has_points, "it stores no data points"),
    draw=_draw_dataset,
)

BOUNDARY = PlotKind(
    name="boundary",
    description="the trained network's decision surface with the data on top (2-D data)",
    need=Need(
        lambda result: result.get("boundary") is not None,
        "the decision surface is drawn for 2-D datasets only",
    ),
    draw=_draw_boundary,
)
