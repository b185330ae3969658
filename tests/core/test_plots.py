"""Plots drawn from a result's numbers: valid PNGs of the asked size, safe from threads."""

from __future__ import annotations

import copy
import io
import itertools
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.transforms import Affine2D, Bbox, TransformedBbox
from PIL import Image

from core.plotting import canvas as plot_canvas
from core.plotting import figure as plot_figure
from core.plotting.catalog import EXPERIMENT_PLOTS, available_plots, render_plot
from core.plotting.kinds import PlotSize, PlotSizeError, PlotUnavailableError, UnknownPlotError
from core.plotting.style import MISSING_COLOR, figure_inches
from tests.core.result_samples import make_diverged_result, make_result

PLOT_NAMES = EXPERIMENT_PLOTS.names
build_figure = EXPERIMENT_PLOTS.build_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAYERS = ["hidden_1", "hidden_2", "hidden_3", "output"]
# (width, height, dpi): the default, a landscape at 72 dpi, a size where
# width / dpi * dpi rounds below the width, and a portrait at high dpi.
SIZES = [(900, 600, 100), (640, 480, 72), (201, 151, 50), (500, 800, 150)]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return make_result()


@pytest.fixture(scope="module")
def diverged() -> dict[str, Any]:
    return make_diverged_result()


def decode(png: bytes) -> np.ndarray:
    """The PNG's pixels as an (height, width, 3) uint8 array; fails on a bad PNG."""
    assert png[:8] == PNG_MAGIC
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def count_color(pixels: np.ndarray, color: str) -> int:
    rgb = np.round(np.array(to_rgb(color)) * 255).astype(np.uint8)
    return int((pixels == rgb).all(axis=2).sum())


def labelled_lines(figure: Figure) -> dict[str, str]:
    """{label: color} of every labelled line in the figure's axes."""
    return {
        str(line.get_label()): to_hex(line.get_color())
        for ax in figure.axes
        for line in ax.get_lines()
        if not str(line.get_label()).startswith("_")
    }


def legend_labels(figure: Figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def all_text(figure: Figure) -> str:
    return "\n".join(text.get_text() for text in figure.findobj(Text) if isinstance(text, Text))


def xdata(line: Line2D) -> np.ndarray:
    return np.asarray(line.get_xdata(), dtype=np.float64)


def heatmap(figure: Figure) -> np.ma.MaskedArray:
    """The data of the figure's first image, as drawn (masked where missing)."""
    return np.ma.asarray(figure.axes[0].get_images()[0].get_array())


# ------------------------------------------------------------------------ availability


def test_a_full_result_offers_every_plot_in_order(result: dict[str, Any]) -> None:
    assert available_plots(result) == list(PLOT_NAMES)
    assert PLOT_NAMES == (
        "dataset",
        "weights",
        "gradients",
        "gradient_flow",
        "activations",
        "histograms",
        "boundary",
        "through_time",
        "channels",
    )


def test_boundary_is_offered_only_when_the_result_has_one(result: dict[str, Any]) -> None:
    no_boundary = {**result, "boundary": None}
    assert "boundary" not in available_plots(no_boundary)
    assert available_plots(no_boundary) == [n for n in PLOT_NAMES if n != "boundary"]
    with pytest.raises(PlotUnavailableError, match=r"boundary.*2-D"):
        render_plot("boundary", no_boundary)


def test_histograms_and_activations_are_offered_only_when_captured(
    result: dict[str, Any],
) -> None:
    no_histograms = {**result, "histograms": None}
    series = {
        name: {key: value for key, value in layer.items() if key != "activation"}
        for name, layer in result["series"].items()
    }
    no_activations = {**result, "series": series}
    assert "histograms" not in available_plots(no_histograms)
    assert "activations" not in available_plots(no_activations)
    assert "gradient_flow" in available_plots(no_activations)
    with pytest.raises(ValueError, match=r"activations.*not captured"):
        render_plot("activations", no_activations)


def test_an_unknown_plot_name_raises_key_error(result: dict[str, Any]) -> None:
    with pytest.raises(KeyError) as caught:
        render_plot("loss_landscape", result)
    assert isinstance(caught.value, UnknownPlotError)
    assert "loss_landscape" in str(caught.value)
    assert "gradient_flow" in str(caught.value)  # lists the known names


# ----------------------------------------------------------------------------- size


@pytest.mark.parametrize("name", PLOT_NAMES)
@pytest.mark.parametrize(("width", "height", "dpi"), SIZES)
def test_every_plot_is_a_png_of_the_asked_size(
    result: dict[str, Any], name: str, width: int, height: int, dpi: int
) -> None:
    pixels = decode(render_plot(name, result, width=width, height=height, dpi=dpi))
    assert pixels.shape == (height, width, 3)
    packed = pixels.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    assert len(np.unique(packed)) > 20  # something was drawn, not a blank canvas


@pytest.mark.parametrize("name", PLOT_NAMES)
@pytest.mark.parametrize(("width", "height", "dpi"), SIZES)
def test_every_plot_keeps_its_panels_and_text_inside_the_figure_and_apart(
    result: dict[str, Any], name: str, width: int, height: int, dpi: int
) -> None:
    figure = build_figure(name, result, width=width, height=height, dpi=dpi)
    canvas = figure.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    renderer = canvas.get_renderer()
    # Each panel with everything around it: ticks, labels, title, insets, legends.
    boxes = [ax.get_tightbbox(renderer) for ax in figure.axes if ax.axison]
    boxes += [legend.get_window_extent(renderer) for legend in figure.legends]
    boxes += [text.get_window_extent(renderer) for text in figure.texts if text.get_text()]
    for box in boxes:
        assert box is not None
        assert box.x0 >= -1 and box.y0 >= -1, (name, box)
        assert box.x1 <= width + 1 and box.y1 <= height + 1, (name, box)
    for one, other in itertools.combinations(boxes, 2):
        assert one is not None and other is not None
        overlap_x = min(one.x1, other.x1) - max(one.x0, other.x0)
        overlap_y = min(one.y1, other.y1) - max(one.y0, other.y0)
        assert overlap_x <= 1 or overlap_y <= 1, (name, one, other)


@pytest.mark.parametrize(
    ("name", "width", "height", "dpi"),
    [
        ("gradients", PlotSize.MIN_WIDTH, PlotSize.MIN_HEIGHT, PlotSize.MIN_DPI),
        ("histograms", PlotSize.MIN_WIDTH, PlotSize.MIN_HEIGHT, PlotSize.MAX_DPI),
        ("dataset", PlotSize.MAX_WIDTH, PlotSize.MAX_HEIGHT, PlotSize.MAX_DPI),
    ],
)
def test_sizes_at_the_bounds_render_exactly(
    result: dict[str, Any], name: str, width: int, height: int, dpi: int
) -> None:
    pixels = decode(render_plot(name, result, width=width, height=height, dpi=dpi))
    assert pixels.shape == (height, width, 3)


def test_defaults_are_within_the_bounds() -> None:
    assert PlotSize.MIN_WIDTH <= PlotSize.WIDTH <= PlotSize.MAX_WIDTH
    assert PlotSize.MIN_HEIGHT <= PlotSize.HEIGHT <= PlotSize.MAX_HEIGHT
    assert PlotSize.MIN_DPI <= PlotSize.DPI <= PlotSize.MAX_DPI


def test_the_default_size_is_900_by_600(result: dict[str, Any]) -> None:
    assert decode(render_plot("weights", result)).shape == (600, 900, 3)


@pytest.mark.parametrize(
    ("parameter", "value", "limit"),
    [
        ("width", PlotSize.MIN_WIDTH - 1, PlotSize.MIN_WIDTH),
        ("width", PlotSize.MAX_WIDTH + 1, PlotSize.MAX_WIDTH),
        ("height", PlotSize.MIN_HEIGHT - 1, PlotSize.MIN_HEIGHT),
        ("height", PlotSize.MAX_HEIGHT + 1, PlotSize.MAX_HEIGHT),
        ("dpi", PlotSize.MIN_DPI - 1, PlotSize.MIN_DPI),
        ("dpi", PlotSize.MAX_DPI + 1, PlotSize.MAX_DPI),
    ],
)
def test_a_size_out_of_bounds_is_refused_naming_parameter_and_limit(
    result: dict[str, Any], parameter: str, value: int, limit: int
) -> None:
    size = {"width": PlotSize.WIDTH, "height": PlotSize.HEIGHT, "dpi": PlotSize.DPI}
    size[parameter] = value
    with pytest.raises(ValueError) as caught:
        render_plot("dataset", result, **size)
    assert isinstance(caught.value, PlotSizeError)
    assert caught.value.parameter == parameter
    assert caught.value.limit == limit
    message = str(caught.value)
    assert message.startswith(f"{parameter}:")
    assert str(limit) in message and str(value) in message


@pytest.mark.parametrize("value", [900.0, "900", True, None])
def test_a_size_that_is_not_an_integer_is_refused(result: dict[str, Any], value: Any) -> None:
    with pytest.raises(PlotSizeError, match=r"^width: must be an integer"):
        render_plot("dataset", result, width=value)


@pytest.mark.parametrize("dpi", [50, 72, 96, 100, 150, 300])
def test_figure_inches_give_exactly_the_pixels_agg_will_draw(dpi: int) -> None:
    for pixels in range(PlotSize.MIN_HEIGHT, PlotSize.MAX_WIDTH + 1):
        inches = figure_inches(pixels, dpi)
        # Agg sizes its buffer as int() of the figure bbox in pixels.
        box = TransformedBbox(Bbox.from_bounds(0, 0, inches, inches), Affine2D().scale(dpi))
        assert int(box.width) == pixels


# ---------------------------------------------------------------------- determinism


def test_rendering_is_deterministic_and_follows_the_numbers(result: dict[str, Any]) -> None:
    first = render_plot("weights", result)
    assert render_plot("weights", copy.deepcopy(result)) == first
    changed = copy.deepcopy(result)
    changed["tutorial"]["weights"]["hidden_1"]["std"][-1] = 3.0
    assert render_plot("weights", changed) != first
    # A number the plot does not draw leaves it unchanged.
    changed = copy.deepcopy(result)
    changed["timing"]["seconds"] = 99.0
    assert render_plot("weights", changed) == first


def test_rendering_does_not_depend_on_what_was_rendered_before(result: dict[str, Any]) -> None:
    first = {name: render_plot(name, result) for name in PLOT_NAMES}
    # Renderers and rasterized text are kept between renders: start afresh,
    # then render in another order with other sizes in between.
    plot_canvas.clear_caches()
    for name in reversed(PLOT_NAMES):
        render_plot(name, result, width=480, height=320, dpi=60)
        assert render_plot(name, result) == first[name]


@pytest.mark.parametrize("size", [{}, {"width": 400, "height": 700, "dpi": 80}])
def test_panels_copied_from_a_template_draw_as_panels_built_directly(
    result: dict[str, Any], diverged: dict[str, Any], size: dict[str, int], monkeypatch: Any
) -> None:
    """core.plotting.figure: a plot whose panels come from a kept template is byte for
    byte the plot built Axes by Axes, from a fresh template and a kept one alike."""
    every = [(name, data) for data in (result, diverged) for name in available_plots(data)]
    plot_figure.clear_templates()
    fresh = [render_plot(name, data, **size) for name, data in every]
    kept = [render_plot(name, data, **size) for name, data in every]
    monkeypatch.setattr(plot_figure, "MAX_TEMPLATES", 0)
    direct = [render_plot(name, data, **size) for name, data in every]
    assert fresh == direct
    assert kept == direct


def test_concurrent_rendering_gives_the_bytes_of_serial_rendering(
    result: dict[str, Any],
) -> None:
    size = {"width": 480, "height": 320, "dpi": 60}
    serial = [render_plot(name, result, **size) for name in PLOT_NAMES]
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(render_plot, name, result, **size) for name in PLOT_NAMES * 2]
        threaded = [future.result() for future in futures]
    assert threaded == serial * 2


# ------------------------------------------------------------------- what is drawn


def test_tutorial_panels_name_each_layer_in_one_color_per_layer(result: dict[str, Any]) -> None:
    weights = build_figure("weights", result)
    gradients = build_figure("gradients", result)
    activations = build_figure("activations", result)
    assert [ax.get_title() for ax in weights.axes] == [
        "mean of kernel weights",
        "S.D. of kernel weights",
    ]
    assert [ax.get_title() for ax in gradients.axes] == [
        "mean of kernel gradients",
        "S.D. of kernel gradients",
        "training loss",
    ]
    assert [ax.get_yscale() for ax in gradients.axes] == ["linear", "log", "linear"]
    assert legend_labels(weights) == LAYERS
    assert legend_labels(gradients) == LAYERS
    colors = labelled_lines(weights)
    assert sorted(colors) == sorted(LAYERS)
    assert len(set(colors.values())) == len(LAYERS)
    assert labelled_lines(gradients) == colors
    hidden = {name: colors[name] for name in ("hidden_1", "hidden_2", "hidden_3")}
    assert labelled_lines(activations) == hidden


def test_weights_plot_spans_every_epoch_including_before_training(
    result: dict[str, Any],
) -> None:
    figure = build_figure("weights", result)
    line = figure.axes[0].get_lines()[0]
    assert list(xdata(line)) == list(range(11))
    ydata = np.asarray(line.get_ydata(), dtype=np.float64)
    np.testing.assert_allclose(ydata, result["tutorial"]["weights"]["hidden_1"]["mean"])


def test_activation_panels_follow_each_layers_measure(result: dict[str, Any]) -> None:
    # hidden_1 is sigmoid (saturation), hidden_2 relu (dead units), hidden_3 linear (neither).
    figure = build_figure("activations", result)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["saturated units", "dead units", "activation mean", "activation S.D."]
    saturated, dead, mean, std = figure.axes
    assert [line.get_label() for line in saturated.get_lines()] == ["hidden_1"]
    assert [line.get_label() for line in dead.get_lines()] == ["hidden_2"]
    hidden = ["hidden_1", "hidden_2", "hidden_3"]
    assert [line.get_label() for line in mean.get_lines()] == hidden
    assert [line.get_label() for line in std.get_lines()] == hidden
    ydata = np.asarray(std.get_lines()[2].get_ydata(), dtype=np.float64)
    np.testing.assert_allclose(ydata, result["series"]["hidden_3"]["activation"]["std"])
    assert saturated.get_ylim() == pytest.approx((-0.03, 1.03))
    assert legend_labels(figure) == ["hidden_1", "hidden_2", "hidden_3"]  # no output


def test_units_negative_everywhere_past_relu_get_their_own_panel() -> None:
    # relu units below zero are dead; gelu and leaky_relu units still pass a gradient.
    result = make_result(activations=("relu", "gelu", "leaky_relu"))
    figure = build_figure("activations", result)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "dead units",
        "units negative on every sample",
        "activation mean",
        "activation S.D.",
    ]
    dead, negative = figure.axes[:2]
    assert [line.get_label() for line in dead.get_lines()] == ["hidden_1"]
    assert [line.get_label() for line in negative.get_lines()] == ["hidden_2", "hidden_3"]
    assert negative.get_ylim() == pytest.approx((-0.03, 1.03))


def test_step_capture_is_plotted_in_fractional_epochs() -> None:
    stepped = make_result(every="step", epochs=10, steps_per_epoch=4)
    figure = build_figure("activations", stepped)
    x = xdata(figure.axes[0].get_lines()[0])
    np.testing.assert_allclose(x[:5], [0.25, 0.5, 0.75, 1.0, 1.25])
    assert x[-1] == pytest.approx(10.0)
    assert figure.axes[-1].get_xlabel() == "epoch (captured every step)"
    flow = build_figure("gradient_flow", stepped)
    assert heatmap(flow).shape == (4, 40)
    left, right, _, _ = flow.axes[0].get_images()[0].get_extent()
    assert (left, right) == pytest.approx((0.125, 10.125))


def test_a_series_longer_than_its_panel_is_wide_keeps_each_pixels_extremes() -> None:
    stepped = make_result(every="step", epochs=100, steps_per_epoch=32)  # 3,200 points
    figure = build_figure("activations", stepped, width=900, height=600, dpi=100)
    mean_panel = figure.axes[2]
    line = mean_panel.get_lines()[0]
    values = np.asarray(stepped["series"]["hidden_1"]["activation"]["mean"], dtype=np.float64)
    x, y = xdata(line), np.asarray(line.get_ydata(), dtype=np.float64)
    assert len(x) <= 2 * 450 + 2  # two points per pixel column of the panels' half
    assert (np.diff(x) > 0).all()  # in order, each point one of the series'
    assert (x[0], x[-1]) == pytest.approx((1 / 32, 100.0))  # the whole run
    assert (y.min(), y.max()) == (values.min(), values.max())
    positions = np.rint(x * 32).astype(int) - 1
    np.testing.assert_array_equal(y, values[positions])


def test_a_series_with_gaps_is_drawn_whole() -> None:
    stepped = make_result(every="step", epochs=100, steps_per_epoch=32)
    stepped["series"]["hidden_1"]["activation"]["mean"][1000:1010] = [None] * 10
    figure = build_figure("activations", stepped, width=900, height=600, dpi=100)
    assert xdata(figure.axes[2].get_lines()[0]).size == 3200


def test_gradient_flow_is_a_layer_by_capture_heatmap_of_log_norms(
    result: dict[str, Any],
) -> None:
    figure = build_figure("gradient_flow", result)
    norms = np.array([result["series"][name]["kernel"]["grad_norm"] for name in LAYERS])
    np.testing.assert_allclose(heatmap(figure), np.log10(norms))
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == LAYERS
    assert len(figure.axes) == 2  # the heatmap and its colorbar
    assert "log10" in figure.axes[1].get_ylabel()


def test_a_heatmap_longer_than_the_figure_is_wide_shows_means_of_neighbours() -> None:
    stepped = make_result(every="step", epochs=100, steps_per_epoch=32)  # 3,200 columns
    flow = build_figure("gradient_flow", stepped, width=640, height=480, dpi=80)
    shown = heatmap(flow)
    assert shown.shape == (4, 640)
    norms = np.array([stepped["series"][name]["kernel"]["grad_norm"] for name in LAYERS])
    logs = np.log10(norms)
    starts = np.linspace(0, 3200, 641).astype(int)
    for column in (0, 321, 639):
        run = logs[:, starts[column] : starts[column + 1]]
        np.testing.assert_allclose(shown[:, column], run.mean(axis=1))
    # The columns still span the run: from half a step before the first to after the last.
    left, right, _, _ = flow.axes[0].get_images()[0].get_extent()
    assert (left, right) == pytest.approx((1 / 64, 100 + 1 / 64))


def test_gradient_flow_shows_missing_values_in_grey(
    result: dict[str, Any], diverged: dict[str, Any]
) -> None:
    missing = np.ma.getmaskarray(heatmap(build_figure("gradient_flow", diverged)))
    assert missing[1].all()  # hidden_2 is null everywhere
    assert missing[0, 5:].all() and not missing[0, :5].any()
    # A masked row is a band of grey; antialiased text leaves a few grey pixels anywhere.
    assert count_color(decode(render_plot("gradient_flow", diverged)), MISSING_COLOR) > 20_000
    assert count_color(decode(render_plot("gradient_flow", result)), MISSING_COLOR) < 200


def test_histograms_are_small_multiples_by_layer_with_a_legend_by_epoch(
    result: dict[str, Any],
) -> None:
    figure = build_figure("histograms", result)
    panels = [ax for ax in figure.axes if ax.axison]
    titles = [ax.get_title() for ax in panels]
    assert [title.split()[0] for title in titles] == LAYERS
    # Each title gives its panel's gradient scale; the sample's shrink 10x per layer.
    scales = [float(title.split("≤")[1].strip(" )")) for title in titles]
    assert scales == sorted(scales) and scales[-1] > 100 * scales[0]
    epochs = result["histograms"]["epochs"]
    # the last snapshot is the trained network, after the last epoch's last step
    assert legend_labels(figure) == [str(epoch) for epoch in epochs[:-1]] + [f"end of {epochs[-1]}"]
    for ax in panels:
        outlines = ax.get_lines()
        assert len(outlines) == len(epochs)  # one step line per snapshot
        for outline in outlines:
            heights = np.asarray(outline.get_ydata(), dtype=np.float64)
            assert heights[0] == heights[-1] == 0.0  # up from the axis and back down
            assert heights[1::2].sum() == pytest.approx(1.0)  # fractions of the entries


def test_a_deep_network_gets_a_readable_grid_and_a_layer_colorbar() -> None:
    deep = make_result(activations=["tanh"] * 20, epochs=4)
    histograms = build_figure("histograms", deep)
    titles = [ax.get_title().split()[0] for ax in histograms.axes if ax.axison]
    assert len(titles) == 12 and titles[0] == "hidden_1" and titles[-1] == "output"
    assert "12 of 21 layers" in histograms.get_suptitle()
    gradients = build_figure("gradients", deep)
    assert not gradients.legends  # 21 layers: a colorbar keyed by layer instead
    assert gradients.axes[-1].get_xlabel() == "layer"


def test_dataset_says_when_it_is_a_pca_projection(result: dict[str, Any]) -> None:
    raw = build_figure("dataset", result).axes[0]
    assert raw.get_xlabel() == "feature 1"
    assert "PCA" not in raw.get_title()
    projected = make_result(n_features=8, n_classes=4)
    ax = build_figure("dataset", projected).axes[0]
    assert ax.get_xlabel() == "principal component 1"
    assert "PCA projection of 8 features" in ax.get_title()
    legend = ax.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == ["0", "1", "2", "3"]
    assert "boundary" not in available_plots(projected)


def test_binary_boundary_draws_probability_and_the_half_contour(result: dict[str, Any]) -> None:
    figure = build_figure("boundary", result)
    ax = figure.axes[0]
    levels = [list(c.levels) for c in ax.collections if hasattr(c, "levels")]
    assert [0.5] in levels  # the decision boundary itself
    assert "accuracy 0.900" in ax.get_title()
    assert "class 1" in ax.child_axes[0].get_ylabel()  # the colorbar, inset beside the axes


def test_multiclass_boundary_renders_one_region_per_class() -> None:
    three = make_result(n_classes=3)
    ax = build_figure("boundary", three).axes[0]
    filled = next(c for c in ax.collections if hasattr(c, "levels"))
    assert list(filled.levels) == [-0.5, 0.5, 1.5, 2.5]
    assert decode(render_plot("boundary", three)).shape == (600, 900, 3)


# ------------------------------------------------------------------- diverged runs


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_a_diverged_result_renders_every_plot(every: str) -> None:
    diverged = make_diverged_result(every=every)
    assert available_plots(diverged) == list(PLOT_NAMES)
    for name in PLOT_NAMES:
        pixels = decode(render_plot(name, diverged, width=640, height=480, dpi=80))
        assert pixels.shape == (480, 640, 3)


def test_a_diverged_result_says_what_is_missing(diverged: dict[str, Any]) -> None:
    weights = build_figure("weights", diverged)
    assert "diverged" in weights.get_suptitle()
    assert "hidden_2 (no finite values)" in legend_labels(weights)
    # The x axis still spans the whole run, so the gap after epoch 5 shows.
    assert weights.axes[0].get_xlim()[1] >= 10
    assert "no finite predictions" in all_text(build_figure("boundary", diverged))


def test_an_all_null_series_renders_an_empty_panel_with_a_note(result: dict[str, Any]) -> None:
    empty = copy.deepcopy(result)
    for stats in empty["tutorial"]["gradients"].values():
        stats["std"] = [None] * len(stats["std"])
    empty["histograms"]["hidden_1"]["gradients"] = [
        {"edges": [None] * 13, "counts": [0] * 12}
    ] * len(empty["histograms"]["epochs"])
    for layer in empty["series"].values():
        layer["kernel"]["grad_norm"] = [None] * len(layer["kernel"]["grad_norm"])
    gradients = build_figure("gradients", empty)
    std_panel = gradients.axes[1]
    assert not std_panel.get_lines()
    assert "no positive finite values" in all_text(gradients)
    assert "no finite histogram" in all_text(build_figure("histograms", empty))
    assert "no finite gradient norms" in all_text(build_figure("gradient_flow", empty))
    for name in ("gradients", "histograms", "gradient_flow"):
        assert decode(render_plot(name, empty)).shape == (600, 900, 3)


# --------------------------------------------------------------------------- layering


def test_importing_plots_does_not_import_tensorflow() -> None:
    code = (
        "import sys, core.plotting.catalog; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_stacked_panels_label_the_shared_x_axis_once(result: dict[str, Any]) -> None:
    portrait = build_figure("gradients", result, width=600, height=1000)
    assert [ax.get_xlabel() for ax in portrait.axes] == ["", "", "epoch"]
    landscape = build_figure("gradients", result)
    assert [ax.get_xlabel() for ax in landscape.axes] == ["epoch"] * 3


def test_log_axis_labels_are_plain_text_powers_of_ten(result: dict[str, Any]) -> None:
    figure = build_figure("gradients", result)
    spread = figure.axes[1]
    labels = [label.get_text() for label in spread.get_yticklabels() if label.get_text()]
    assert len(labels) >= 2
    # Unicode superscripts rather than mathtext, which parses every label.
    assert all(re.fullmatch("10⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+", label) for label in labels), labels
    low, high = spread.get_ylim()
    ticks = spread.yaxis.get_majorticklocs()
    assert all(low <= tick <= high for tick in ticks)  # no ticks built past the view


def test_a_log_axis_within_one_decade_labels_its_minor_ticks_in_plain_text(
    result: dict[str, Any],
) -> None:
    narrow = copy.deepcopy(result)
    for stats in narrow["tutorial"]["gradients"].values():
        stats["std"] = [0.002 + 0.0005 * index for index in range(len(stats["std"]))]
    spread = build_figure("gradients", narrow).axes[1]
    labels = [label.get_text() for label in spread.get_yticklabels(minor=True)]
    times = "\N{MULTIPLICATION SIGN}"
    assert {f"2{times}10⁻³", f"3{times}10⁻³", f"4{times}10⁻³"} <= set(labels)
    assert not any("$" in label for label in labels)


def test_zero_gradient_spread_is_called_out_on_the_log_axis(result: dict[str, Any]) -> None:
    dead = copy.deepcopy(result)
    dead["tutorial"]["gradients"]["hidden_1"]["std"][3:] = [0.0] * 7
    assert "zeros not shown" in all_text(build_figure("gradients", dead))
    assert "zeros not shown" not in all_text(build_figure("gradients", result))
