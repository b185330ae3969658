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
from worker.drawing import MAX_LOSSES, DrawingHelper, draw_plots

START_SECONDS = 60.0
EAGER = ["weights", "gradients"]
PIPE_BYTES = 1 << 16  # what a pipe holds on Linux, unless raised


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


def dead(pid: int) -> bool:
    """Gone, or on its way (a zombie, as its threads end)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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


def test_a_study_is_drawn_the_same_way(helper: DrawingHelper) -> None:
    from core.plotting.study.series import study_series

    kinds = ("sigmoid", "relu")
    runs = [make_result(activations=(kind, kind), seed=i) for i, kind in enumerate(kinds)]
    configs = [{"index": i, "label": kind, "values": {}} for i, kind in enumerate(kinds)]
    series = orjson.loads(orjson.dumps(study_series(configs, 1, runs)))
    names = STUDY_PLOTS.available(series)
    assert len(names) >= 2

    plots = draw_plots(
        STUDY_PLOTS, names, series, orjson.dumps(series), what="a study", helper=helper
    )

    assert helper.batches == 1
    assert plots == {name: STUDY_PLOTS.render(name, series) for name in names}


def draw_eager(helper: DrawingHelper, result: dict[str, Any]) -> dict[str, bytes]:
    return draw_plots(
        EXPERIMENT_PLOTS, EAGER, result, dumps_result(result), what="a job", helper=helper
    )


def kill_and_draw(helper: DrawingHelper, result: dict[str, Any]) -> int:
    """Kill the helper, then draw batches, each whole, until one has found it lost
    (the batch after its death, or the one after that where its pipe had not closed
    yet); the pid killed."""
    killed = helper.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)

    def seen_lost() -> bool:
        assert draw_eager(helper, result) == alone(EAGER, result)  # its share drawn here
        return helper.pid != killed

    wait_for(seen_lost, timeout=10, what="a batch to find the helper lost")
    return killed


def test_a_helper_killed_costs_nothing_but_time_and_is_replaced(
    helper: DrawingHelper, result: dict[str, Any]
) -> None:
    killed = kill_and_draw(helper, result)

    assert helper.pid not in (None, killed)
    assert helper.ready(timeout=START_SECONDS)
    assert draw_eager(helper, result) == alone(EAGER, result)
    assert helper.batches == 1  # the new helper's


def test_a_process_whose_helpers_keep_dying_stops_starting_them(
    helper: DrawingHelper, result: dict[str, Any]
) -> None:
    killed = {kill_and_draw(helper, result) for _ in range(MAX_LOSSES)}
    assert len(killed) == MAX_LOSSES and helper.pid is not None  # each replaced

    kill_and_draw(helper, result)

    assert helper.pid is None  # no other is started
    assert draw_eager(helper, result) == alone(EAGER, result)
    assert helper.pid is None and helper.batches == 0


def test_a_helper_that_does_not_answer_is_replaced_and_its_share_drawn_here() -> None:
    result = make_result(epochs=100)
    numbers = dumps_result(result)
    assert len(numbers) > PIPE_BYTES  # more than the helper's pipe holds: it reads none
    helper = DrawingHelper(answer_seconds=1.0)
    helper.start()
    try:
        assert helper.ready(timeout=START_SECONDS)
        stuck = helper.pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)

        plots = draw_plots(EXPERIMENT_PLOTS, EAGER, result, numbers, what="a job", helper=helper)

        assert plots == alone(EAGER, result)
        assert helper.batches == 0
        assert dead(stuck)
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


def test_without_a_helper_running_the_batch_is_drawn_here(result: dict[str, Any]) -> None:
    never_started = DrawingHelper()
    plots = draw_plots(
        EXPERIMENT_PLOTS, EAGER, result, dumps_result(result), what="a job", helper=never_started
    )
    assert plots == alone(EAGER, result)
    assert never_started.batches == 0 and never_started.pid is None


def test_the_helper_ends_with_the_process_that_started_it() -> None:
    script = (
        "import os\n"
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

    wait_for(lambda: dead(pid), timeout=10, what="the orphaned helper to exit")
