"""Results of every version parse, list, diagnose and render: version 1 and 2 results
(real ones, kept in tests/core/fixtures: version 1 written before layer lists, version 2
by 4c1990a, before a step point's activations came from its training batch) outlive a
deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.experiment.diagnosis import diagnose
from core.experiment.jobs import Summary
from core.experiment.result import RESULT_VERSION
from core.plotting.catalog import available_plots, render_plot

FIXTURES = Path(__file__).parent / "fixtures"
V1 = sorted(FIXTURES.glob("v1_*.json"))
V2 = sorted(FIXTURES.glob("v2_*.json"))


def load(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def test_there_are_old_fixtures_and_the_version_moved_on() -> None:
    assert len(V1) >= 2 and all(load(path)["version"] == 1 for path in V1)
    assert len(V2) >= 2 and all(load(path)["version"] == 2 for path in V2)
    assert all("channels" not in load(path) for path in V1 + V2)  # version 3 added them
    assert RESULT_VERSION == 3


@pytest.mark.parametrize("path", V1 + V2, ids=lambda p: p.name)
def test_an_old_result_diagnoses_as_it_did(path: Path) -> None:
    result = load(path)
    again = diagnose(result)
    assert again["verdicts"] == result["diagnosis"]["verdicts"]
    flow, stored = (
        again["evidence"]["gradient_flow"],
        result["diagnosis"]["evidence"]["gradient_flow"],
    )
    assert {key: flow[key] for key in stored} == stored
    if "first_layer" not in stored:  # version 1: an MLP's first layer
        assert flow["first_layer"] == next(iter(stored["median_rms_grad"]))
    summary = Summary.from_result(result)
    assert summary.loss == result["metrics"]["after"]["loss"]
    assert summary.accuracy == result["metrics"]["after"]["accuracy"]


@pytest.mark.parametrize("path", V1 + V2, ids=lambda p: p.name)
def test_an_old_result_renders_every_plot_it_has(path: Path) -> None:
    result = load(path)
    names = available_plots(result)
    assert {"weights", "gradients", "gradient_flow"} <= set(names)
    assert "channels" not in names  # it kept none, convolutions or not
    for name in names:
        png = render_plot(name, result, width=320, height=240, dpi=50)
        assert png.startswith(b"\x89PNG")
