"""The `remedies` plot: a remedy study's fixes against its baseline, from its series."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from matplotlib.text import Text

from core.experiment.jobs import JobStatus, Summary
from core.experiment.remedy_studies import remedy_summary
from core.experiment.study_summary import ChildOutcome
from core.plotting.catalog import STUDY_PLOTS, planned_study_plots, render_study_plot
from core.plotting.study.remedies import REMEDIES
from core.plotting.study.series import study_series
from tests.core.result_samples import make_result
from tests.core.test_studies import _built, _overlap, _png_size

FIXES = ("tanh", "batch_norm", "relu", "residual", "glorot_init")
REQUEST = {
    "source": {"kind": "experiment", "experiment": "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"},
    "fixes": {fix: {"patch": {}, "verdicts": ["vanishing"]} for fix in FIXES},
}
CONFIGS = [
    {"index": index, "label": label, "values": {}}
    for index, label in enumerate(("baseline", *FIXES))
]
SEEDS = 2
# (accuracy, gradient ratio) per configuration and seed: the tutorial's figures, roughly.
RUNS = {
    "baseline": [(0.73, 0.019), (0.62, 0.02)],
    "tanh": [(0.99, 12.0), (0.99, 13.0)],
    "batch_norm": [(0.99, 7.8), (0.98, 7.7)],
    "relu": [(0.99, 11.0), (0.99, 11.5)],
    "residual": [(0.85, 0.11), (0.7, 0.08)],
    "glorot_init": [(0.5, 0.0016), (0.5, 0.0017)],
}


def result(accuracy: float, ratio: float, seed: int) -> dict[str, Any]:
    out = make_result(activations=("sigmoid",) * 3, epochs=3, seed=seed)
    out["metrics"]["after"] = {"loss": 1.0 - accuracy, "accuracy": accuracy}
    verdicts = ["vanishing"] if ratio < 0.1 else ["healthy"]
    flow = {"first_to_last_rms_ratio": ratio, "max_grad_norm": 1.0}
    out["diagnosis"] = {"verdicts": verdicts, "evidence": {"gradient_flow": flow}}
    return out


@pytest.fixture(scope="module")
def results() -> list[dict[str, Any] | None]:
    runs = [run for config in CONFIGS for run in RUNS[config["label"]]]
    found: list[dict[str, Any] | None] = [
        result(accuracy, ratio, seed) for seed, (accuracy, ratio) in enumerate(runs)
    ]
    found[-1] = None  # glorot_init's second seed failed
    return found


@pytest.fixture(scope="module")
def series(results: list[dict[str, Any] | None]) -> dict[str, Any]:
    return study_series(CONFIGS, SEEDS, iter(results), remedies=REQUEST)


def test_the_series_holds_what_the_summary_says(
    results: list[dict[str, Any] | None], series: dict[str, Any]
) -> None:
    outcomes = [
        ChildOutcome(str(i), JobStatus.FAILED)
        if r is None
        else ChildOutcome(str(i), JobStatus.SUCCEEDED, Summary.from_result(r).to_json_dict())
        for i, r in enumerate(results)
    ]
    assert series["remedies"] == remedy_summary(CONFIGS, SEEDS, outcomes, REQUEST)
    rows = {row["fix"]: row for row in series["remedies"]["fixes"]}
    assert rows["tanh"]["verdicts"][0]["cleared"] == 2
    assert rows["glorot_init"]["seeds"] == 1  # the seed that failed is left out
    assert rows["tanh"]["accuracy_change"]["mean"] == pytest.approx((0.26 + 0.37) / 2)


def test_only_a_remedy_study_has_the_plot(series: dict[str, Any]) -> None:
    assert REMEDIES.name in STUDY_PLOTS.names
    assert REMEDIES.name in STUDY_PLOTS.available(series)
    ordinary = study_series(CONFIGS[:2], 1, [result(0.7, 0.02, 1), result(0.9, 10.0, 2)])
    assert "remedies" not in ordinary
    assert REMEDIES.name not in STUDY_PLOTS.available(ordinary)
    assert REMEDIES.name not in planned_study_plots([])  # its submission adds it


@pytest.mark.parametrize("size", [(900, 600, 100), (320, 240, 72), (500, 800, 100)])
def test_it_is_a_png_of_the_asked_size_with_every_text_inside_and_apart(
    series: dict[str, Any], size: tuple[int, int, int]
) -> None:
    width, height, dpi = size
    assert _png_size(render_study_plot("remedies", series, width=width, height=height, dpi=dpi))
    assert _png_size(
        render_study_plot("remedies", series, width=width, height=height, dpi=dpi)
    ) == (
        width,
        height,
    )
    figure = _built("remedies", series, width, height, dpi)
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    ticks = {
        id(t) for ax in figure.axes for axis in (ax.xaxis, ax.yaxis) for t in axis.get_ticklabels()
    }
    texts = [text for text in figure.findobj(Text) if text.get_visible() and text.get_text()]
    boxes = [(text, text.get_window_extent(renderer)) for text in texts]
    for text, box in boxes:
        assert box.x0 >= -1 and box.y0 >= -1, (text.get_text(), box)
        assert box.x1 <= width + 1 and box.y1 <= height + 1, (text.get_text(), box)
    for (one, one_box), (other, other_box) in itertools.combinations(boxes, 2):
        if id(one) in ticks and id(other) in ticks:
            continue
        assert not _overlap(one_box, other_box), (one.get_text(), other.get_text())


def test_it_names_every_fix_and_counts_the_seeds_cleared(series: dict[str, Any]) -> None:
    figure = _built("remedies", series, 900, 600, 100)
    cleared, change, ratio = figure.axes
    assert [label.get_text() for label in cleared.get_yticklabels()] == list(FIXES)
    counts = [text.get_text() for text in cleared.texts]
    assert counts == ["2/2", "2/2", "2/2", "1/2", "0/1"]
    assert change.get_title() == "accuracy change"
    assert ratio.get_xscale() == "log"
    assert render_study_plot("remedies", series) == render_study_plot("remedies", series)
