"""Every plot the service draws: one record each (`core.plotting.kinds.PlotKind`), in the
order clients see them.

A new plot is a `PlotKind` in a module of its own idea, and one line here; the
API's plot names, descriptions and URLs, what the worker draws as a job or a
study ends, and a render's ETag (`core.plotting.sources`) all follow from it.

Example:
    >>> EXPERIMENT_PLOTS.available(result)
    ['dataset', 'weights', 'gradients', ...]
    >>> png = EXPERIMENT_PLOTS.render("gradients", result, width=900, height=600, dpi=100)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.plotting.experiment import (
    activations,
    channels,
    gradient_flow,
    histograms,
    points,
    through_time,
    tutorial,
)
from core.plotting.experiment.axes import label_bottom_row_only
from core.plotting.kinds import PlotCatalog
from core.plotting.study import grids, lines, remedies

if TYPE_CHECKING:
    from core.experiment.spec import ExperimentSpec

# Plots of one run, drawn from its result alone (the `result.json` layout in
# core.experiment.result), never from a model, so any size can be rendered on
# demand long after the run.
EXPERIMENT_PLOTS = PlotCatalog(
    "result",
    (
        points.DATASET,
        tutorial.WEIGHTS,
        tutorial.GRADIENTS,
        gradient_flow.GRADIENT_FLOW,
        activations.ACTIVATIONS,
        histograms.HISTOGRAMS,
        points.BOUNDARY,
        through_time.THROUGH_TIME,
        channels.CHANNELS,
    ),
    # Panels stacked on a shared x axis need its label once, at the bottom.
    before_layout=label_bottom_row_only,
)

# Plots of a study: its configurations side by side, drawn from the series
# (core.plotting.study.series) stored with the study.
STUDY_PLOTS = PlotCatalog(
    "study",
    (lines.DEPTH, lines.CURVES, grids.GRADIENT_FLOW, grids.BOUNDARY, remedies.REMEDIES),
)


# The render functions by name, as the worker, the CLI and the benchmarks call them.
available_plots = EXPERIMENT_PLOTS.available
render_plot = EXPERIMENT_PLOTS.render
available_study_plots = STUDY_PLOTS.available
render_study_plot = STUDY_PLOTS.render


def planned_study_plots(specs: Sequence[ExperimentSpec]) -> list[str]:
    """The plots a study of these child specs will have, if its children succeed."""
    return [
        kind.name
        for kind in STUDY_PLOTS.kinds
        if kind.need.planned is None or kind.need.planned(specs)
    ]
