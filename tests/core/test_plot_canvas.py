"""The plots' canvas: text drawn from its cache as Agg draws it, and exact, lossless PNGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from PIL import Image

from core.plotting import canvas as plot_canvas
from core.plotting.canvas import (
    PNG_SIGNATURE,
    PlotCanvas,
    TextCachingRenderer,
    encode_png,
    render_png,
    shared_renderer,
)


def forget_everything() -> None:
    """Empty every cache, as in a fresh process."""
    plot_canvas.clear_caches()


def text_figure() -> Figure:
    figure = Figure(figsize=(3.2, 2.0), dpi=100)
    figure.text(0.1, 0.8, "epoch 100", fontsize=11, color="#1f77b4")
    figure.text(0.1, 0.5, "hidden_1 (no finite values)", fontsize=8.5)
    figure.text(0.05, 0.1, "S.D.", fontsize=10, rotation=90, color="#d62728")
    figure.text(0.6, 0.3, "10⁻³ gap", fontsize=9, alpha=0.5)
    figure.text(0.6, 0.1, "tilted", fontsize=9, rotation=30)
    figure.text(0.5, 0.65, "$x^2$", fontsize=10)
    return figure


def pixels(canvas: FigureCanvasAgg) -> np.ndarray:
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(np.int16)


def ink(image: np.ndarray) -> np.ndarray:
    """How far each pixel is from white, summed over the channels."""
    return np.asarray((255 - image).sum(axis=2), dtype=np.int64)


# ------------------------------------------------------------------------------ text


def test_cached_text_matches_agg_up_to_whole_pixel_placement() -> None:
    forget_everything()
    plain = ink(pixels(FigureCanvasAgg(text_figure())))
    cached = ink(pixels(PlotCanvas(text_figure())))
    # The same glyphs, each string moved by under a pixel: the same amount of
    # ink, and every inked pixel of one within a pixel of ink in the other.
    assert cached.sum() == pytest.approx(plain.sum(), rel=0.03)
    for one, other in ((plain, cached), (cached, plain)):
        near = np.zeros_like(other, dtype=bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                near |= np.roll(other > 0, (dy, dx), axis=(0, 1))
        assert not ((one > 60) & ~near).any()


def test_text_draws_the_same_whether_or_not_it_was_cached() -> None:
    forget_everything()
    first = render_png(text_figure())
    second = render_png(text_figure())
    forget_everything()
    assert render_png(text_figure()) == first == second


def test_each_string_is_rasterized_once_per_font_and_angle() -> None:
    forget_everything()
    render_png(text_figure())
    cached = set(plot_canvas._coverage.keys())
    render_png(text_figure())
    assert set(plot_canvas._coverage.keys()) == cached
    strings = {key[0] for key in cached}
    # Plain text at 0 and 90 degrees is cached; mathtext, a tilt and alpha are not.
    assert {"epoch 100", "hidden_1 (no finite values)", "S.D."} <= strings
    assert not strings & {"$x^2$", "x^2", "tilted", "10⁻³ gap"}


def test_text_layout_metrics_are_those_matplotlib_computes() -> None:
    forget_everything()
    figure = Figure(figsize=(4, 3), dpi=150)
    texts = [
        figure.text(0.1, 0.1, "hidden_1", fontsize=8.5),
        figure.text(0.1, 0.4, "two\nlines", fontsize=11),
        figure.text(0.1, 0.7, "S.D.", fontsize=10, rotation=90),
    ]
    cached, plain = TextCachingRenderer(600, 450, 150), RendererAgg(600, 450, 150)
    for text in texts:
        assert text.get_window_extent(cached).bounds == text.get_window_extent(plain).bounds


def test_blank_text_draws_nothing() -> None:
    figure = Figure(figsize=(1, 1), dpi=100)
    figure.text(0.5, 0.5, "   ")
    image = pixels(PlotCanvas(figure))
    assert (image == 255).all()


# ------------------------------------------------------------------------- renderer


def test_a_renderer_is_kept_per_size_and_only_the_recent_ones() -> None:
    forget_everything()
    first = shared_renderer(300, 200, 100)
    assert shared_renderer(300, 200, 100) is first
    assert shared_renderer(300, 200, 72) is not first
    for width in range(plot_canvas.MAX_RENDERERS + 1):
        shared_renderer(400 + width, 200, 100)
    assert len(plot_canvas._renderers) == plot_canvas.MAX_RENDERERS
    assert shared_renderer(300, 200, 100) is not first


def test_the_canvas_draws_on_the_shared_renderer_of_its_size() -> None:
    figure = Figure(figsize=(2, 1), dpi=100)
    assert PlotCanvas(figure).get_renderer() is shared_renderer(200, 100, 100)


# ------------------------------------------------------------------------------ PNG


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_png_decodes_to_exactly_the_pixels() -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(37, 53, 4), dtype=np.uint8)
    png = encode_png(rgba)
    assert png.startswith(PNG_SIGNATURE)
    np.testing.assert_array_equal(decode(png), rgba)


def test_png_records_the_dpi_and_nothing_else() -> None:
    rgba = np.full((10, 20, 4), 255, dtype=np.uint8)
    png = encode_png(rgba, dpi=150)
    image = Image.open(io.BytesIO(png))
    assert image.info["dpi"] == pytest.approx((150, 150), abs=0.05)
    assert set(image.info) == {"dpi"}  # no text chunks: the bytes depend on the pixels
    assert encode_png(rgba, dpi=150) == png


def test_png_of_a_plot_is_about_as_small_as_pillows() -> None:
    # One filter for every row is a trade of size for time: keep it a small one.
    figure = Figure(figsize=(9, 6), dpi=100)
    ax = figure.add_subplot()
    x = np.linspace(0, 10, 400)
    for phase in range(5):
        ax.plot(x, np.sin(x + phase), linewidth=1.6)
    ax.set_title("five waves")
    png = render_png(figure)
    pillow = io.BytesIO()
    Image.fromarray(decode(png)).save(pillow, format="png")
    assert len(png) < 1.3 * len(pillow.getvalue())


@pytest.mark.parametrize("shape", [(10, 10, 3), (10, 10), (10, 10, 4, 1)])
def test_png_refuses_anything_but_rgba(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected \(height, width, 4\) uint8"):
        encode_png(np.zeros(shape, dtype=np.uint8))


def test_png_refuses_other_dtypes() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 4), dtype=np.float32))


def test_render_png_is_the_figure_at_its_pixel_size() -> None:
    figure = Figure(figsize=(2.01, 1.51), dpi=100)
    figure.text(0.5, 0.5, "x")
    assert decode(render_png(figure)).shape == (151, 201, 4)


def test_text_caches_keep_to_their_budget_dropping_the_least_recently_used() -> None:
    cache: plot_canvas._LeastRecentlyUsed[str, bytes] = plot_canvas._LeastRecentlyUsed(10, len)
    cache.get("a", lambda: b"aaaa")
    cache.get("b", lambda: b"bbbb")
    assert cache.get("a", lambda: b"new!") == b"aaaa"  # a hit; "a" is now the most recent
    cache.get("c", lambda: b"cccc")  # 12 bytes: "b" goes
    assert cache.keys() == ["a", "c"]
    cache.get("huge", lambda: b"x" * 50)  # over budget alone: kept, everything else goes
    assert cache.keys() == ["huge"]


def test_font_properties_key_the_cache_by_value() -> None:
    # A mutated FontProperties must not find the entry of its old value.
    forget_everything()
    prop = FontProperties(size=9)
    renderer = shared_renderer(100, 100, 100)
    small = renderer._get_font_height_metrics(prop)
    prop.set_size(18)
    large = renderer._get_font_height_metrics(prop)
    assert large[0] is not None and small[0] is not None
    assert large[0] == pytest.approx(2 * small[0])
