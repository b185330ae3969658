"""Activations: saturated, dead and always-negative units, mean and S.D., on the probe batch
(epoch points) or on each step's training batch (step points of a version 3 result)."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from core.plotting.experiment.axes import Result, capture_epochs, shared_x_panels, span_x, suptitle
from core.plotting.experiment.layers import layer_colors, layer_legend, layer_names_of, layer_panel
from core.plotting.kinds import Need, PlotKind
from core.plotting.layout import Frame
from core.plotting.style import Style


def _draw_activations(figure: Figure, result: Result, style: Style) -> Frame:
    names = _activation_layers(result)
    activations = {name: result["series"][name]["activation"] for name in names}
    saturated = [name for name in names if activations[name].get("saturated") is not None]
    dead = [name for name in names if activations[name].get("dead") is not None]
    negative = [name for name in names if activations[name].get("negative") is not None]
    # Saturation and death exist for some activations only (units that are
    # negative everywhere still pass a gradient past relu); every layer has a
    # mean and a spread, and a spread that shrinks with depth is the signal dying.
    panels = [
        (key, title, ylabel, chosen)
        for key, title, ylabel, chosen in (
            ("saturated", "saturated units", "fraction of units saturated", saturated),
            ("dead", "dead units", "fraction of units dead", dead),
            ("negative", "units negative on every sample", "fraction of units", negative),
            ("mean", "activation mean", "mean", names),
            ("std", "activation S.D.", "S.D.", names),
        )
        if chosen
    ]
    x, xlabel = capture_epochs(result)
    colors = layer_colors(result)
    drawn_anywhere: set[str] = set()
    axes = shared_x_panels(figure, len(panels), style)
    for ax, (key, title, ylabel, chosen) in zip(axes, panels, strict=True):
        series = {name: activations[name].get(key) for name in chosen}
        drawn_anywhere |= layer_panel(
            ax, x, series, colors, style, title=title, xlabel=xlabel, ylabel=ylabel
        )
        if key in ("saturated", "dead", "negative"):
            ax.set_ylim(-0.03, 1.03)
        span_x(ax, x, style)
    frame = layer_legend(figure, names, drawn_anywhere, colors, style)
    frame.title = suptitle(figure, result, f"Activations on {_measured_on(result)}", style)
    return frame


def _measured_on(result: Result) -> str:
    """What the points' activations were computed on (core/experiment/result.py)."""
    capture = result.get("capture") or {}
    sources = capture.get("activations") or {}
    if capture.get("every") == "step" and sources.get("step_source") == "training_batch":
        return "each step's training batch"
    return "the probe batch"


def _activation_layers(result: Result) -> list[str]:
    series = result.get("series") or {}
    return [
        name
        for name in layer_names_of(result)
        if isinstance((series.get(name) or {}).get("activation"), Mapping)
    ]


ACTIVATIONS = PlotKind(
    name="activations",
    description="saturated, dead or always-negative units, and activation mean and S.D.",
    need=Need(lambda result: bool(_activation_layers(result)), "activations were not captured"),
    draw=_draw_activations,
)
