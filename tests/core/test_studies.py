"""Studies without a worker: validation, expansion, summary, CSV, plots, and the store on Redis."""

from __future__ import annotations

import csv
import io
import itertools
import json
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from core.experiment.grouping import group_signature
from core.experiment.jobs import JobStatus, Summary, new_job_id
from core.experiment.studies import (
    MAX_CHILDREN,
    StudyError,
    StudyRequest,
    expand_study,
    parse_study,
)
from core.experiment.study_presets import STUDY_PRESETS
from core.experiment.study_summary import ChildOutcome, study_status, summarize, summary_csv
from core.plotting import canvas as plot_canvas
from core.plotting.catalog import (
    STUDY_PLOTS,
    available_study_plots,
    planned_study_plots,
    render_study_plot,
)
from core.plotting.kinds import PlotSizeError
from core.plotting.kinds import PlotUnavailableError as StudyPlotUnavailableError
from core.plotting.kinds import UnknownPlotError as UnknownStudyPlotError
from core.plotting.study.remedies import REMEDIES
from core.plotting.study.series import study_series
from core.queue.tasks import study_child_task, study_group_task
from core.settings import Settings
from core.store.admission import TooManyActiveJobs
from core.store.dispatch import warm_graph
from core.store.keys import Keys, plot_field
from core.store.records import WorkerInfo
from core.store.stores import StorePlans, StudyStore, plans_from_settings
from tests.core.result_samples import make_diverged_result, make_result

# An ordinary study's plots; a remedy study adds `remedies` (tests/core/test_remedy_plot.py).
STUDY_PLOT_NAMES = [name for name in STUDY_PLOTS.names if name != REMEDIES.name]

WORKER = WorkerInfo(hostname="fake@test", device="cpu", device_name="CPU", tensorflow="0")


def expand(body: dict[str, Any]) -> Any:
    return expand_study(StudyRequest.model_validate(body))


def errors_of(body: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(StudyError) as raised:
        expand(body)
    return raised.value.errors


# ------------------------------------------------------------------- expansion


def test_the_tutorial_preset_is_sigmoid_tanh_relu_on_the_tutorial_network() -> None:
    plan = expand({"preset": "tutorial"})
    assert [c.model.activation.value for c in plan.children] == ["sigmoid", "tanh", "relu"]
    for child in plan.children:
        assert child.model.hidden_layers == [5, 5, 5, 5]
        assert child.model.initializer.kind.value == "random_normal"
        assert child.model.initializer.stddev == 1.0
        assert child.training.epochs == 100 and child.dataset.n_samples == 1000
    assert [c.label for c in plan.configs] == [
        "activation=sigmoid",
        "activation=tanh",
        "activation=relu",
    ]
    assert plan.request["preset"] == "tutorial"


def test_every_preset_expands_within_the_limit() -> None:
    sizes = {p.name: len(expand({"preset": p.name}).children) for p in STUDY_PRESETS}
    assert sizes == {
        "tutorial": 3,
        "initializers": 9,
        "fixes": 4,
        "recurrent-cells": 9,
        "conv-depth": 4,
    }


def test_layer_lists_are_labelled_by_what_they_hold() -> None:
    plan = expand({"preset": "recurrent-cells"})
    assert plan.configs[0].label == "layers=SimpleRNN(16), sequence_length=10"
    labels = [config.label for config in expand({"preset": "conv-depth"}).configs]
    assert labels[0] == "layers=Conv2D(8) x 8, sigmoid x 8, GlobalAveragePooling2D"
    assert "Residual(Conv2D(8), sigmoid) x 7" in labels[2]


def test_the_recurrent_cells_preset_points_at_what_was_measured() -> None:
    """Its description names the textbook's claim and the README's measured outcome,
    which on this task went the other way, rather than the claim alone."""
    preset = next(p for p in STUDY_PRESETS if p.name == "recurrent-cells")
    assert "textbook" in preset.description
    assert "SimpleRNN solved all three lengths" in preset.description
    assert "GRU and LSTM stayed at chance at 100 steps" in preset.description
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "| SimpleRNN | 100 | 1.000 |" in readme
    assert (
        "| GRU | 100 | 0.250 (chance) |" in readme and "| LSTM | 100 | 0.250 (chance) |" in readme
    )


def test_a_preset_keeps_the_seeds_asked_for() -> None:
    plan = expand({"preset": "tutorial", "seeds": 2, "name": "mine"})
    assert len(plan.children) == 6
    assert plan.children[0].name == "mine: activation=sigmoid, seed 1/2"


def test_seeds_run_in_order_and_are_shared_by_every_configuration() -> None:
    plan = expand(
        {
            "base": {"seed": 40, "training": {"epochs": 2}},
            "axes": {"model.activation": ["relu", "tanh"], "training.batch_size": [16, 64]},
            "seeds": 3,
        }
    )
    assert len(plan.configs) == 4 and len(plan.children) == 12
    assert [c.seed for c in plan.children] == [40, 41, 42] * 4
    assert plan.configs[1].values == {"model.activation": "relu", "training.batch_size": 64}
    assert plan.config_of(5) == 1
    assert plan.children[5].training.batch_size == 64
    assert plan.request["seed"] == 40 and "seed" not in plan.request["base"]


def test_a_study_without_a_seed_draws_one_and_records_it() -> None:
    plan = expand({"axes": {"model.activation": ["relu"]}, "seeds": 2})
    seed = plan.request["seed"]
    assert [c.seed for c in plan.children] == [seed, seed + 1]


def test_a_section_can_be_an_axis() -> None:
    plan = expand(
        {"axes": {"model.initializer": [{"kind": "he_normal"}, {"kind": "glorot_uniform"}]}}
    )
    assert [c.label for c in plan.configs] == [
        "initializer=he_normal",
        "initializer=glorot_uniform",
    ]
    assert plan.children[0].model.initializer.kind.value == "he_normal"


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"axes": {"model.activ": ["relu"]}}, "axes.model.activ", "no field 'activ'"),
        ({"axes": {"modle.activation": ["relu"]}}, "axes.modle.activation", "no field"),
        ({"axes": {"training.epochs.x": [1]}}, "axes.training.epochs.x", "has no fields"),
        ({"axes": {"seed": [1, 2]}}, "axes.seed", "seeds"),
        ({"axes": {"model.activation": ["relu", "bogus"]}}, "axes.model.activation[1]", "sigmoid"),
        ({"axes": {"training.epochs": [5, 0]}}, "axes.training.epochs[1]", "greater than"),
        (
            {"axes": {"model.initializer": [{"kind": "nope"}]}},
            "axes.model.initializer[0].kind",
            "glorot_uniform",
        ),
        (
            {"axes": {"dataset.n_samples": [10]}},
            "axes.dataset.n_samples[0]",
            "training.batch_size",
        ),
        ({"axes": {"model.activation": ["relu", "relu"]}}, "axes.model.activation", "twice"),
        (
            {"axes": {"model.initializer": [{}], "model.initializer.kind": ["zeros"]}},
            "axes.model.initializer.kind",
            "overlaps",
        ),
        (
            {
                "axes": {
                    "training.epochs": list(range(1, 10)),
                    "training.batch_size": [*range(8, 16)],
                }
            },
            "axes",
            "9 x 8 = 72 configurations exceed the limit of 64",
        ),
        (
            {"axes": {"training.epochs": [1, 2, 3, 4, 5]}, "seeds": 13},
            "seeds",
            "65 experiments exceed the limit of 64",
        ),
        ({"base": {"training": {"epochs": 0}}}, "base.training.epochs", "greater than"),
        ({"base": {"seed": -1}}, "base.seed", "integer"),
        ({"preset": "nope"}, "preset", "tutorial"),
        ({"preset": "tutorial", "axes": {"model.activation": ["relu"]}}, "preset", "either"),
    ],
)
def test_a_bad_study_names_the_field(body: dict[str, Any], field: str, reason: str) -> None:
    errors = errors_of(body)
    assert errors[0]["field"] == field, errors
    assert reason in errors[0]["reason"] or reason == "either", errors


def test_a_combination_of_valid_values_can_still_be_refused() -> None:
    body = {
        "base": {"model": {"residual": True}},
        "axes": {"model.hidden_layers": [[5, 5], [4, 4]], "model.batch_norm": [False]},
    }
    assert expand(body).children  # each is valid with the base
    errors = errors_of({**body, "axes": {"model.hidden_layers": [[5, 5], [3, 4]]}})
    assert errors[0]["field"] == "axes.model.hidden_layers[1]"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seeds": 0}, "seeds"),
        ({"seeds": "many"}, "seeds"),
        ({"axes": {"model.activation": []}}, "axes.model.activation"),
        ({"axes": {"training.epochs": list(range(1, 66))}}, "axes.training.epochs"),
        ({"axes": {"model.activation": "relu"}}, "axes.model.activation"),
        ({"grid": {}}, "grid"),
        ([1, 2], "body"),
    ],
)
def test_a_badly_shaped_request_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(StudyError) as raised:
        parse_study(body)
    assert raised.value.errors[0]["field"] == field, raised.value.errors


def test_the_largest_grid_is_allowed() -> None:
    plan = expand({"axes": {"training.epochs": list(range(1, 17))}, "seeds": 4})
    assert len(plan.children) == MAX_CHILDREN


# --------------------------------------------------------------------- summary


def _summary(loss: float, accuracy: float, *verdicts: str) -> dict[str, Any]:
    return Summary(loss=loss, accuracy=accuracy, verdicts=verdicts).to_json_dict()


CONFIGS = [
    {"index": 0, "label": "activation=sigmoid", "values": {"model.activation": "sigmoid"}},
    {"index": 1, "label": "activation=relu", "values": {"model.activation": "relu"}},
]


def test_the_summary_has_one_row_per_config_with_mean_and_spread() -> None:
    outcomes = [
        ChildOutcome("a", JobStatus.SUCCEEDED, _summary(0.6, 0.5, "vanishing")),
        ChildOutcome("b", JobStatus.SUCCEEDED, _summary(0.7, 0.6, "vanishing")),
        ChildOutcome("c", JobStatus.SUCCEEDED, _summary(0.1, 0.9)),
        ChildOutcome("d", JobStatus.FAILED),
    ]
    rows = summarize(CONFIGS, 2, outcomes)["rows"]
    assert [row["label"] for row in rows] == ["activation=sigmoid", "activation=relu"]
    sigmoid, relu = rows
    assert sigmoid["loss"]["mean"] == pytest.approx(0.65)
    assert sigmoid["loss"]["std"] == pytest.approx(0.0707107, rel=1e-5)
    assert (sigmoid["accuracy"]["min"], sigmoid["accuracy"]["max"]) == (0.5, 0.6)
    assert sigmoid["verdicts"] == {"vanishing": 2} and sigmoid["children"] == ["a", "b"]
    assert relu["succeeded"] == 1 and relu["failed"] == 1
    assert relu["accuracy"] == {"n": 1, "mean": 0.9, "std": None, "min": 0.9, "max": 0.9}


def test_a_regression_study_row_carries_the_baseline_that_says_what_solved_means() -> None:
    def regression(loss: float, baseline: float) -> dict[str, Any]:
        return Summary(loss=loss, accuracy=None, verdicts=(), baseline_loss=baseline).to_json_dict()

    outcomes = [
        ChildOutcome("a", JobStatus.SUCCEEDED, regression(0.02, 0.166)),
        ChildOutcome("b", JobStatus.SUCCEEDED, regression(0.16, 0.168)),
        ChildOutcome("c", JobStatus.SUCCEEDED, _summary(0.1, 0.9)),
        ChildOutcome("d", JobStatus.SUCCEEDED, _summary(0.2, 0.8)),
    ]
    summary = summarize(CONFIGS, 2, outcomes)
    adding, classified = summary["rows"]
    assert adding["baseline_loss"]["mean"] == pytest.approx(0.167)
    assert (adding["baseline_loss"]["min"], adding["baseline_loss"]["max"]) == (0.166, 0.168)
    assert adding["accuracy"]["n"] == 0
    assert classified["baseline_loss"]["n"] == 0 and classified["accuracy"]["n"] == 2
    rows = list(csv.DictReader(io.StringIO(summary_csv(summary, ["model.activation"]))))
    assert float(rows[0]["baseline_loss_mean"]) == pytest.approx(0.167)
    assert rows[1]["baseline_loss_mean"] == ""
    # A summary sealed before the baseline was kept still writes its CSV, the cells empty.
    for row in summary["rows"]:
        del row["baseline_loss"]
    rows = list(csv.DictReader(io.StringIO(summary_csv(summary, ["model.activation"]))))
    assert [row["baseline_loss_mean"] for row in rows] == ["", ""]


def test_a_study_is_cancelled_failed_or_succeeded_by_its_children() -> None:
    ok = ChildOutcome("a", JobStatus.SUCCEEDED, _summary(0.1, 0.9))
    assert study_status([ok, ok]) is JobStatus.SUCCEEDED
    assert study_status([ok, ChildOutcome("b", None)]) is JobStatus.FAILED
    assert study_status([ok, ChildOutcome("b", JobStatus.FAILED)]) is JobStatus.FAILED
    cancelled = ChildOutcome("c", JobStatus.CANCELLED)
    assert study_status([ChildOutcome("b", JobStatus.FAILED), cancelled]) is JobStatus.CANCELLED


def test_the_csv_has_a_column_per_axis_and_a_line_per_config() -> None:
    outcomes = [
        ChildOutcome("a", JobStatus.SUCCEEDED, _summary(0.6, 0.5, "vanishing", "saturated")),
        ChildOutcome("b", JobStatus.SUCCEEDED, _summary(0.1, 0.9)),
    ]
    text = summary_csv(summarize(CONFIGS, 1, outcomes), ["model.activation"])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["model.activation"] for row in rows] == ["sigmoid", "relu"]
    assert float(rows[0]["accuracy_mean"]) == 0.5 and rows[0]["accuracy_std"] == ""
    assert rows[0]["verdicts"] == "saturated:1;vanishing:1"
    assert rows[1]["succeeded"] == "1" and rows[1]["seeds"] == "1"


# ----------------------------------------------------------------------- plots


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@pytest.fixture(scope="module")
def series() -> dict[str, Any]:
    results = [
        make_result(activations=("sigmoid",) * 3, epochs=6, seed=1),
        make_result(activations=("sigmoid",) * 3, epochs=6, seed=2),
        make_result(activations=("relu",) * 3, epochs=6, seed=3),
        None,  # a child that failed
    ]
    return study_series(CONFIGS, 2, results)


def test_the_series_aggregates_seeds_per_config(series: dict[str, Any]) -> None:
    sigmoid, relu = series["configs"]
    assert (sigmoid["runs"], relu["runs"]) == (2, 1)
    assert len(sigmoid["curves"]["loss"]["mean"]) == 6
    assert sigmoid["depth"]["layers"] == ["hidden_1", "hidden_2", "hidden_3", "output"]
    assert len(sigmoid["flow"]["log10_norm"]) == 4
    band = sigmoid["curves"]["loss"]
    assert all(lo <= hi for lo, hi in zip(band["min"], band["max"], strict=True))
    assert available_study_plots(series) == list(STUDY_PLOT_NAMES)


def test_depth_at_initialization_is_the_first_steps_gradient() -> None:
    results = [make_result(activations=("tanh",) * 3, epochs=4, seed=seed) for seed in (1, 2)]
    layers = ["hidden_1", "hidden_2", "hidden_3", "output"]
    for result, scale in zip(results, (1.0, 4.0), strict=True):
        result["initial"] = {
            name: {"kernel": {"grad_std": 0.01 * scale * depth, "grad_norm": scale * depth}}
            for depth, name in enumerate(layers, start=1)
        }
    depth = study_series(CONFIGS[:1], 2, results)["configs"][0]["depth"]
    # The geometric mean over the two seeds: twice the first seed's.
    assert depth["std_first"] == pytest.approx([0.02, 0.04, 0.06, 0.08])
    assert depth["norm_first"] == pytest.approx([2.0, 4.0, 6.0, 8.0])


@pytest.mark.parametrize("name", STUDY_PLOT_NAMES)
@pytest.mark.parametrize("size", [(900, 600, 100), (320, 240, 72), (1201, 801, 150)])
def test_every_study_plot_is_a_png_of_the_asked_size(
    series: dict[str, Any], name: str, size: tuple[int, int, int]
) -> None:
    width, height, dpi = size
    png = render_study_plot(name, series, width=width, height=height, dpi=dpi)
    assert _png_size(png) == (width, height)


def test_study_plots_are_deterministic(series: dict[str, Any]) -> None:
    assert render_study_plot("curves", series) == render_study_plot("curves", series)


def test_study_plot_errors_name_the_problem(series: dict[str, Any]) -> None:
    with pytest.raises(UnknownStudyPlotError):
        render_study_plot("weights", series)
    with pytest.raises(PlotSizeError, match="width"):
        render_study_plot("curves", series, width=10)
    empty = study_series(CONFIGS, 1, [None, None])
    assert available_study_plots(empty) == []
    with pytest.raises(StudyPlotUnavailableError):
        render_study_plot("curves", empty)


def test_a_diverged_child_is_drawn_up_to_where_it_stopped() -> None:
    series = study_series(CONFIGS, 1, [make_diverged_result(), make_result(epochs=6)])
    for name in available_study_plots(series):
        assert _png_size(render_study_plot(name, series, width=400, height=300)) == (400, 300)


def test_planned_plots_follow_the_specs() -> None:
    plan = expand({"preset": "tutorial"})
    assert planned_study_plots(plan.children) == list(STUDY_PLOT_NAMES)
    iris = expand({"base": {"dataset": {"kind": "iris"}, "capture": {"gradients": False}}})
    assert planned_study_plots(iris.children) == ["curves"]


def _grid_series(count: int) -> dict[str, Any]:
    """A study of `count` configurations with labels as long as a real grid's, one seed each."""
    shapes = [
        (depth, activation) for depth in (2, 3, 4, 5) for activation in ("sigmoid", "tanh", "relu")
    ]
    configs, results = [], []
    for index in range(count):
        depth, activation = shapes[index % len(shapes)]
        label = f"hidden_layers={'-'.join(['5'] * depth)}, activation={activation}"
        configs.append({"index": index, "label": label, "values": {}})
        results.append(make_result(activations=(activation,) * depth, epochs=6, seed=index))
    return study_series(configs, 1, results)


@pytest.fixture(scope="module")
def grid_series() -> dict[int, dict[str, Any]]:
    return {count: _grid_series(count) for count in (1, 3, 12)}


def _built(name: str, series: dict[str, Any], width: int, height: int, dpi: int) -> Figure:
    """The figure behind the PNG, drawn on a canvas of its own."""
    figure = STUDY_PLOTS.build_figure(name, series, width=width, height=height, dpi=dpi)
    FigureCanvasAgg(figure).draw()
    return figure


def _overlap(one: Bbox, other: Bbox) -> bool:
    overlap_x = min(one.x1, other.x1) - max(one.x0, other.x0)
    overlap_y = min(one.y1, other.y1) - max(one.y0, other.y0)
    return overlap_x > 1 and overlap_y > 1


@pytest.mark.parametrize("name", STUDY_PLOT_NAMES)
@pytest.mark.parametrize("count", [1, 3, 12])
@pytest.mark.parametrize("size", [(900, 600, 100), (320, 240, 72), (500, 800, 100)])
def test_every_study_plot_keeps_its_text_inside_the_figure_and_off_panels_and_other_text(
    grid_series: dict[int, dict[str, Any]], name: str, count: int, size: tuple[int, int, int]
) -> None:
    width, height, dpi = size
    figure = _built(name, grid_series[count], width, height, dpi)
    assert figure.get_layout_engine() is None  # placed once, not measured at every draw
    canvas = figure.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    renderer = canvas.get_renderer()
    ticks = {
        id(label)
        for ax in figure.axes
        for axis in (ax.xaxis, ax.yaxis)
        for label in axis.get_ticklabels()
    }
    texts = [text for text in figure.findobj(Text) if text.get_visible() and text.get_text()]
    boxes = [(text, text.get_window_extent(renderer)) for text in texts]
    panels = [ax.get_window_extent(renderer) for ax in figure.axes]  # heatmaps, surfaces, bar
    for text, box in boxes:
        label = text.get_text()
        assert box.x0 >= -1 and box.y0 >= -1, (label, box)
        assert box.x1 <= width + 1 and box.y1 <= height + 1, (label, box)
        assert not any(_overlap(box, panel) for panel in panels), label
    for (one, one_box), (other, other_box) in itertools.combinations(boxes, 2):
        if id(one) in ticks and id(other) in ticks:
            continue  # how densely an axis is labelled is its locator's business, not layout's
        assert not _overlap(one_box, other_box), (one.get_text(), other.get_text())


def test_every_study_plot_keeps_its_title_and_its_key(
    grid_series: dict[int, dict[str, Any]],
) -> None:
    series = grid_series[12]
    labels = [config["label"] for config in series["configs"]]
    titles = {
        "depth": "Gradients by depth",
        "curves": "Learning curves",
        "gradient_flow": "Gradient flow",
        "boundary": "Decision surfaces (first seed)",
    }
    for name, title in titles.items():
        figure = _built(name, series, 900, 600, 100)
        assert [text.get_text() for text in figure.texts] == [title]
        if name in ("depth", "curves"):  # the legend by configuration
            (legend,) = figure.legends
            assert [text.get_text() for text in legend.get_texts()] == labels
        else:  # a panel per configuration, its label as its title (wrapped to fit)
            panel_titles = [ax.get_title().replace(",\n", ", ").replace("=\n", "=")
                            for ax in figure.axes if ax.get_title()]  # fmt: skip
            assert [title.split("\naccuracy")[0] for title in panel_titles] == labels
    flow = _built("gradient_flow", series, 900, 600, 100)
    bar = flow.axes[-1]
    assert bar.get_ylabel().startswith("log10 ‖∇W‖")  # one color scale for every heatmap
    assert len(flow.axes) == len(labels) + 1


def test_every_study_plot_is_deterministic_whatever_was_drawn_before(
    grid_series: dict[int, dict[str, Any]],
) -> None:
    series = grid_series[3]
    first = {name: render_study_plot(name, series) for name in STUDY_PLOT_NAMES}
    # Renderers and rasterized text are kept between renders: start afresh,
    # then render in another order with other sizes in between.
    plot_canvas.clear_caches()
    for name in reversed(STUDY_PLOT_NAMES):
        render_study_plot(name, series, width=320, height=240, dpi=72)
        assert render_study_plot(name, series) == first[name]


def test_concurrent_study_plots_give_the_bytes_of_serial_ones(
    grid_series: dict[int, dict[str, Any]],
) -> None:
    series = grid_series[3]
    size = {"width": 480, "height": 320, "dpi": 60}
    serial = [render_study_plot(name, series, **size) for name in STUDY_PLOT_NAMES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(render_study_plot, name, series, **size) for name in STUDY_PLOT_NAMES * 2
        ]
        threaded = [future.result() for future in futures]
    assert threaded == serial * 2


# ----------------------------------------------------------------------- store


@pytest.fixture
def study_store(settings: Settings, redis_client: redis.Redis) -> StudyStore:
    """A study store on a namespace of its own (keys deleted with the session's)."""
    own = settings.model_copy(update={"namespace": f"{settings.namespace}-studies"})
    return StudyStore(redis_client, plans_from_settings(own))


def _new_study(store: StudyStore, seeds: int = 1) -> tuple[str, list[str]]:
    plan = expand(
        {
            "base": {"seed": 1, "training": {"epochs": 2}},
            "axes": {"model.activation": ["relu", "tanh"]},
        }
        | {"seeds": seeds}
    )
    queues = ["nowhere"] * len(plan.children)
    record = store.create_study(plan=plan, queues=queues, plots=["curves"])
    assert record.status is JobStatus.QUEUED
    return record.id, record.child_ids


def _succeed(store: StudyStore, job_id: str, accuracy: float) -> None:
    assert store.mark_running(job_id, worker=WORKER, max_deliveries=3) is not None
    summary = Summary(loss=1 - accuracy, accuracy=accuracy, verdicts=("vanishing",))
    assert store.mark_succeeded(job_id, summary=summary, result_json="{}", plots={})


def _events(store: StudyStore, study_id: str) -> list[tuple[str, dict[str, Any]]]:
    import json

    return [(e.type, json.loads(e.data)) for e in store.read_study_events(study_id)]


def test_a_study_is_made_with_its_children_waiting_in_units_that_share_a_graph(
    study_store: StudyStore,
) -> None:
    study_id, children = _new_study(study_store, seeds=2)

    for child in children:
        record = study_store.get(child)
        assert record is not None and record.status is JobStatus.QUEUED
        assert record.queue == "nowhere" and record.dispatch == 0
        task = study_store.client.hget(study_store.plans.keys.job(child).record, "task")
        assert json.loads(task or b"null") == study_child_task(child, study_id)
    assert sorted(study_store.waiting(queue="nowhere")) == sorted(children)
    # Two seeds of two activations share a graph: one unit, trained side by side.
    unit = study_store.claim(queue="nowhere", hostname="w@test")
    assert unit is not None and study_store.claim(queue="nowhere", hostname="w@test") is None
    ids = [job_id for job_id, _ in unit.jobs]
    assert unit.task == study_group_task(ids, study_id) and sorted(ids) == sorted(children)
    events = [(e.type, json.loads(e.data)) for e in study_store.read_events(children[0])]
    assert events == [("state", {"status": "queued"})]


def test_a_units_graph_is_the_one_its_members_share(study_store: StudyStore) -> None:
    # Two depths of two activations: a unit per depth, named by its members' graphs
    # together, so that a worker holding one such graph warm takes that unit first.
    plan = expand(
        {
            "base": {"seed": 1, "training": {"epochs": 2}},
            "axes": {
                "model.hidden_layers": [[5, 5], [5, 5, 5]],
                "model.activation": ["relu", "tanh"],
            },
        }
    )
    study = study_store.create_study(plan=plan, queues=["nowhere"] * 4, plots=[])
    deeper = warm_graph(group_signature(plan.children[2:]), 2)
    first = study_store.claim(queue="nowhere", hostname="w@test", warm=[deeper])
    assert first is not None
    assert [job for job, _ in first.jobs] == study.child_ids[2:]
    second = study_store.claim(queue="nowhere", hostname="w@test")
    assert second is not None
    assert [job for job, _ in second.jobs] == study.child_ids[:2]


def test_a_study_is_read_for_its_owner_alone_and_another_owners_read_touches_nothing(
    study_store: StudyStore,
) -> None:
    plan = expand({"base": {"seed": 1}, "axes": {"model.activation": ["relu", "tanh"]}})
    study = study_store.create_study(
        plan=plan, queues=["nowhere"] * 2, plots=["curves"], owner="alice"
    )
    _succeed(study_store, study.child_ids[0], 0.9)
    told = _events(study_store, study.id)

    assert study_store.get_study(study.id, owner="bob") is None
    assert study_store.get_study(new_job_id(), owner="alice") is None
    # Bob's read stopped at the owner: the child's success is not yet told on the study.
    assert _events(study_store, study.id) == told
    mine = study_store.get_study(study.id, owner="alice")
    assert mine is not None and mine.progress["succeeded"] == 1
    assert len(_events(study_store, study.id)) > len(told)
    assert study_store.get_study(study.id) == mine  # no owner: whoever owns it


def test_a_study_past_the_active_jobs_limit_makes_nothing(study_store: StudyStore) -> None:
    owner = f"limited-{new_job_id()}"
    plan = expand({"base": {"seed": 1}, "axes": {"model.activation": ["relu", "tanh"]}})
    study_store.create(spec=plan.children[0], queue="nowhere", owner=owner)

    with pytest.raises(TooManyActiveJobs) as raised:
        study_store.create_study(
            plan=plan, queues=["nowhere"] * 2, plots=[], owner=owner, max_active=2
        )

    assert raised.value.active == 1
    assert len(study_store.list_jobs(owner=owner).items) == 1  # none of its children
    assert study_store.list_studies(owner=owner).items == []
    made = study_store.create_study(
        plan=plan, queues=["nowhere"] * 2, plots=[], owner=owner, max_active=3
    )
    assert len(study_store.list_jobs(owner=owner).items) == 3 and len(made.child_ids) == 2


def test_a_study_follows_its_children_and_seals_once(study_store: StudyStore) -> None:
    study_id, children = _new_study(study_store, seeds=2)
    assert study_store.mark_running(children[0], worker=WORKER, max_deliveries=3)
    record = study_store.get_study(study_id)
    assert record is not None and record.status is JobStatus.RUNNING
    assert record.progress["running"] == 1 and record.progress["queued"] == 3
    assert record.started_at is not None
    for index, child in enumerate(children):
        if index:
            assert study_store.mark_running(child, worker=WORKER, max_deliveries=3)
        summary = Summary(loss=0.5, accuracy=0.5 + 0.1 * index)
        assert study_store.mark_succeeded(child, summary=summary, result_json="{}", plots={})
    record = study_store.get_study(study_id, seal_after=0)
    assert record is not None and record.status is JobStatus.SUCCEEDED
    assert record.summary is not None and len(record.summary["rows"]) == 2
    assert record.summary["rows"][1]["accuracy"]["mean"] == pytest.approx(0.75)
    assert record.finished_at is not None and record.finished_at >= record.started_at  # type: ignore[operator]
    assert study_store.get_study(study_id) == record  # sealed: read as stored
    events = _events(study_store, study_id)
    kinds = [kind for kind, _ in events]
    assert kinds == ["state", "child", "state", "child", "child", "child", "child", "state"]
    finished = [data for kind, data in events if kind == "child" and data["status"] == "succeeded"]
    assert [data["finished"] for data in finished] == [1, 2, 3, 4]
    assert events[-1][1]["status"] == "succeeded"


def test_a_child_that_vanished_fails_the_study(study_store: StudyStore) -> None:
    study_id, children = _new_study(study_store)
    _succeed(study_store, children[0], 0.9)
    assert study_store.delete(children[1])
    record = study_store.get_study(study_id, seal_after=0)
    assert record is not None and record.status is JobStatus.FAILED
    assert [child.status for child in record.children] == ["succeeded", "missing"]


def test_cancel_flags_the_study_and_returns_its_children(study_store: StudyStore) -> None:
    study_id, children = _new_study(study_store)
    assert study_store.mark_running(children[0], worker=WORKER, max_deliveries=3)
    outcome = study_store.cancel(study_id)
    assert outcome is not None and outcome.children == children
    record = study_store.get_study(study_id)
    assert record is not None and record.cancel_requested
    assert record.status is JobStatus.RUNNING  # until the running child stops
    assert [child.status for child in record.children] == ["running", "cancelled"]
    assert study_store.mark_cancelled(children[0])
    record = study_store.get_study(study_id)  # nothing succeeded: nothing to draw, sealed now
    assert record is not None and record.status is JobStatus.CANCELLED
    assert study_store.cancel_study("01" + "0" * 24) is None


def test_delete_removes_the_study_and_its_children(study_store: StudyStore) -> None:
    study_id, children = _new_study(study_store)
    assert study_store.delete_with_children(study_id)
    assert study_store.get_study(study_id) is None
    assert all(study_store.get(child) is None for child in children)
    assert not study_store.delete_with_children(study_id)


def test_a_complete_study_waits_for_its_drawing_worker_then_seals_with_plots(
    study_store: StudyStore,
) -> None:
    study_id, children = _new_study(study_store)
    for child in children:
        _succeed(study_store, child, 0.8)
    waiting = study_store.get_study(study_id)  # within the grace: the worker is drawing
    assert waiting is not None and waiting.complete and waiting.status is JobStatus.RUNNING
    assert study_store.claim_study_drawing(study_id, by="worker-1")
    assert not study_store.claim_study_drawing(study_id, by="worker-2")
    sealed = study_store.seal_study(study_id, series_json='{"a":1}', plots={"curves": b"png1"})
    assert sealed is not None and sealed.status is JobStatus.SUCCEEDED
    assert sealed.summary is not None and len(sealed.summary["rows"]) == 2
    assert study_store.get_study_series(study_id) == b'{"a":1}'
    assert study_store.get_study_plot(study_id, field="curves").png == b"png1"
    assert [kind for kind, _ in _events(study_store, study_id)][-1] == "state"
    assert not study_store.claim_study_drawing(study_id, by="worker-3")  # sealed


def test_a_reader_seals_when_the_drawing_worker_is_late_and_the_plots_still_land(
    study_store: StudyStore,
) -> None:
    study_id, children = _new_study(study_store)
    for child in children:
        _succeed(study_store, child, 0.8)
    assert study_store.claim_study_drawing(study_id, by="worker-1")
    sealed = study_store.get_study(study_id, seal_after=0)  # the grace has passed
    assert sealed is not None and sealed.status is JobStatus.SUCCEEDED
    late = study_store.seal_study(study_id, series_json='{"a":1}', plots={"depth": b"png"})
    assert late == sealed  # summary and status kept
    assert study_store.get_study_plot(study_id, field="depth").png == b"png"
    assert study_store.get_study_series(study_id) == b'{"a":1}'
    states = [data["status"] for kind, data in _events(study_store, study_id) if kind == "state"]
    assert states.count("succeeded") == 1


def test_series_and_plots_are_stored_once_the_study_is_sealed(study_store: StudyStore) -> None:
    study_id, children = _new_study(study_store)
    assert not study_store.put_study_series(study_id, series_json="{}")  # not finished
    assert study_store.put_study_plot(study_id, field="curves", png=b"png") is None
    for child in children:
        _succeed(study_store, child, 0.8)
    assert study_store.get_study(study_id, seal_after=0) is not None
    assert study_store.put_study_series(study_id, series_json='{"a":1}')
    assert not study_store.put_study_series(study_id, series_json='{"a":2}')  # first one kept
    assert study_store.get_study_series(study_id) == b'{"a":1}'
    etag = study_store.put_study_plot(study_id, field="curves", png=b"png")
    stored = study_store.get_study_plot(study_id, field="curves")
    assert stored.etag == etag and stored.png == b"png"
    miss = study_store.get_study_plot(study_id, field="depth")
    assert miss.png is None and miss.status is JobStatus.SUCCEEDED


def test_a_studys_renders_share_the_byte_budget_of_every_jobs_the_oldest_dropped(
    settings: Settings, redis_client: redis.Redis
) -> None:
    keys = Keys(f"{settings.namespace}-render-budget")
    ttls = {"job_ttl_seconds": 3600, "idempotency_ttl_seconds": 3600}
    store = StudyStore(redis_client, StorePlans(keys, **ttls, render_cache_bytes=10))
    study_id, children = _new_study(store)
    for child in children:
        _succeed(store, child, 0.8)
    assert store.claim_study_drawing(study_id, by="worker-1")
    default = b"default-size PNG, outside the budget"
    assert store.seal_study(study_id, series_json="{}", plots={"curves": default}) is not None
    job_spec = expand({"base": {"seed": 1}}).children[0]
    job_id = store.create(spec=job_spec, queue="nowhere").record.id
    assert store.mark_running(job_id, worker=WORKER, max_deliveries=3) is not None
    summary = Summary(loss=0.5, accuracy=0.5)
    assert store.mark_succeeded(
        job_id, summary=summary, result_json="{}", plots={"weights": default}
    )

    def put(record: str, field: str) -> str | None:  # 4 bytes a render
        if record == study_id:
            return store.put_study_plot(study_id, field=field, png=b"abcd")
        return store.put_plot(job_id, field=field, png=b"abcd")

    def kept(record: str, field: str) -> bytes | None:
        if record == study_id:
            return store.get_study_plot(study_id, field=field).png
        return store.get_plot(job_id, field=field).png

    renders = [
        (study_id, plot_field("curves", (200, 200, 100))),
        (job_id, plot_field("weights", (201, 200, 100))),
        (study_id, plot_field("depth", (202, 200, 100))),  # pushes the study's first out
        (job_id, plot_field("weights", (203, 200, 100))),  # pushes the job's first out
    ]
    for record, field in renders:
        assert put(record, field) is not None
    too_big = store.put_study_plot(study_id, field=plot_field("curves", (9, 9, 9)), png=b"x" * 11)

    assert too_big is None
    assert [kept(record, field) for record, field in renders] == [None, None, b"abcd", b"abcd"]
    total: bytes | None = redis_client.get(keys.render_bytes)  # type: ignore[assignment]
    assert int(total or 0) == 8
    assert store.get_study_plot(study_id, field="curves").png == default
    assert store.get_plot(job_id, field="weights").png == default


def test_a_study_is_listed_for_its_owner(study_store: StudyStore) -> None:
    plan = expand({"base": {"seed": 1}, "axes": {"model.activation": ["relu"]}})
    made = study_store.create_study(plan=plan, queues=["nowhere"], plots=[], owner="erin")
    assert made.owner == "erin" and study_store.study_owner(made.id) == "erin"
    [child] = made.child_ids
    assert study_store.owner_of(child) == "erin"
    assert [r.id for r in study_store.list_studies(owner="erin").items] == [made.id]
    assert study_store.list_studies(owner="frank").items == []
    assert study_store.delete_with_children(made.id)
    assert study_store.list_studies(owner="erin").items == []


def test_studies_list_newest_first_with_a_cursor(study_store: StudyStore) -> None:
    made = [_new_study(study_store)[0] for _ in range(3)]
    page = study_store.list_studies(limit=2)
    assert [r.id for r in page.items] == made[::-1][:2] and page.next_cursor
    rest = study_store.list_studies(limit=2, cursor=page.next_cursor)
    assert made[0] in [r.id for r in rest.items]
