"""Plots drawn two at a time, here and in a drawing helper process (worker.drawing)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import psutil
import pytest

from core.experiment.result import dumps_result
from core.plotting.catalog import EXPERIMENT_PLOTS, STUDY_PLOTS
from tests.conftest import ROOT, wait_for
from tests.core.result_samples import make_result
from worker.drawing import DrawingHelper, draw_plots

START_SECONDS = 60.0
EAGER = ["weights", "gradients"]


@pytest.fixture
def helper() -> Iterator[DrawingHelper]:
    helper = DrawingHelper()
    helper.start()
    assert helper.ready(timeout=START_SECONDS)
    yield helper
    helper.stop()


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return make_result()


def alone(names: list[str], data: dict[str, Any]) -> dict[str, bytes]:
    return {name: EXPERIMENT_PLOTS.render(name, data) for name in names}


def test_the_helper_draws_its_share_and_every_png_is_what_this_process_draws(
    helper: DrawingHelper, result: dict[str, Any]
) -> None:
    names = EXPERIMENT_PLOTS.available(result)

    plots = draw_plots(
        EXPERIMENT_PLOTS, names, result, dumps_result(result), what="a job", helper=helper
    )

    assert helper.batches == 1
    assert list(plots) == names
    assert plots == alone(names, result)  # the helper drew from the JSON, as stored


def test_a_study_is_drawn_the_same_way() -> None:
    from core.plotting.study.series import study_series

    kinds = ("sigmoid", "relu")
    runs = [make_result(activations=(kind, kind), seed=i) for i, kind in enumerate(kinds)]
    configs = [{"index": i, "label": kind, "values": {}} for i, kind in enumerate(kinds)]
    series = orjson.loads(orjson.dumps(study_series(configs, 1, runs)))
    names = STUDY_PLOTS.available(series)
    assert len(names) >= 2
    helper = DrawingHelper()
    helper.start()
    try:
        assert helper.ready(timeout=START_SECONDS)
        plots = draw_plots(
            STUDY_PLOTS, names, series, orjson.dumps(series), what="a study", helper=helper
        )
    finally:
        helper.stop()
    assert helper.batches == 1
    assert plots == {name: STUDY_PLOTS.render(name, series) for name in names}


def test_a_helper_killed_costs_nothing_but_time_and_is_replaced(
    helper: DrawingHelper, result: dict[str, Any]
) -> None:
    killed = helper.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)

    plots = draw_plots(
        EXPERIMENT_PLOTS, EAGER, result, dumps_result(result), what="a job", helper=helper
    )
    assert plots == alone(EAGER, result)  # its share drawn here
    if helper.pid == killed:  # it had not been seen dead yet: the next batch finds it so
        plots = draw_plots(
            EXPERIMENT_PLOTS, EAGER, result, dumps_result(result), what="a job", helper=helper
        )
        assert plots == alone(EAGER, result)

    assert helper.pid not in (None, killed)
    assert helper.ready(timeout=START_SECONDS)
    draw_plots(EXPERIMENT_PLOTS, EAGER, result, dumps_result(result), what="a job", helper=helper)
    assert helper.batches == 1  # the new helper's


def test_a_helper_that_does_not_answer_is_replaced_and_its_share_drawn_here(
    result: dict[str, Any],
) -> None:
    helper = DrawingHelper(answer_seconds=1.0)
    helper.start()
    try:
        assert helper.ready(timeout=START_SECONDS)
        stuck = helper.pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)

        plots = draw_plots(
            EXPERIMENT_PLOTS, EAGER, result, dumps_result(result), what="a job", helper=helper
        )

        assert plots == alone(EAGER, result)
        assert helper.batches == 0
        assert not psutil.pid_exists(stuck) or psutil.Process(stuck).status() == "zombie"
        assert helper.pid not in (None, stuck)
    finally:
        helper.stop()


def test_a_plot_the_helper_cannot_draw_is_left_out_and_logged(
    helper: DrawingHelper, caplog: pytest.LogCaptureFixture
) -> None:
    result = {key: value for key, value in make_result().items() if key != "channels"}
    assert "channels" not in EXPERIMENT_PLOTS.available(result)
    names = ["weights", "channels", "gradients"]  # "channels" falls to the helper

    with caplog.at_level(logging.ERROR, logger="worker.drawing"):
        plots = draw_plots(
            EXPERIMENT_PLOTS, names, result, dumps_result(result), what="job x", helper=helper
        )

    assert plots == alone(EAGER, result)
    assert helper.batches == 1
    assert "job x: plot channels could not be drawn" in caplog.text


def test_a_helper_not_ready_yet_leaves_the_batch_to_this_process(result: dict[str, Any]) -> None:
    never_started = DrawingHelper()
    plots = draw_plots(
        EXPERIMENT_PLOTS, EAGER, result, dumps_result(result), what="a job", helper=never_started
    )
    assert plots == alone(EAGER, result)
    assert never_started.batches == 0 and never_started.pid is None


def test_the_helper_ends_with_the_process_that_started_it() -> None:
    script = (
        "import os, sys\n"
        "from worker.drawing import DrawingHelper\n"
        "helper = DrawingHelper()\n"
        "helper.start()\n"
        "assert helper.ready(timeout=60)\n"
        "print(helper.pid, flush=True)\n"
        "os._exit(0)\n"  # as a prefork pool process ends: no cleanup runs
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True, timeout=90
    )
    pid = int(out.stdout.split()[0])

    def gone() -> bool:
        return not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"

    wait_for(gone, timeout=10, what="the orphaned helper to exit")
