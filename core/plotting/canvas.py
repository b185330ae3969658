"""Raster output for the plots: an Agg canvas that reuses its renderer and text, and a PNG writer.

A plot draws the same few dozen strings ("epoch", "0.2", "hidden_1", ...)
every time, and matplotlib shapes and rasterizes each of them glyph by glyph
on every draw, which was most of a plot's drawing time. `PlotCanvas` draws
with a renderer kept per pixel size, so matplotlib's text metrics cache
outlives each figure, and that renderer rasterizes each distinct string once
and afterwards only composites the stored image. A string is placed on whole
pixels (as matplotlib did before 3.11), so its pixels never depend on what
was drawn before and the PNG bytes stay deterministic.

Everything here is shared state: callers must serialize figure building and
drawing (`core.plotting.kinds` holds one lock around both).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import numpy as np
from matplotlib.backend_bases import GraphicsContextBase
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont, get_font

MAX_RENDERERS = 4  # a 3200 x 2400 renderer holds 30 MB: keep the sizes in use, not every size
# Bytes of rasterized text kept, least recently used dropped first. The plots
# of a run at the default size draw a few hundred strings of a few kB each;
# the budget keeps requests for many sizes from growing the process.
TEXT_COVERAGE_BYTES = 16 * 2**20
TEXT_IMAGE_BYTES = 32 * 2**20
FONT_HEIGHT_ENTRIES = 1024
PNG_COMPRESSION = 1  # zlib level: higher levels shrink plots by 5-15% for up to twice the time
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_METERS_PER_INCH = 0.0254

FontHeights = tuple[float | None, float | None, float | None]


class _TextImage:
    """A string drawn once: RGBA rows bottom to top, and its top-left pixel from the anchor."""

    __slots__ = ("left", "pixels", "top")

    def __init__(self, pixels: np.ndarray, left: int, top: int) -> None:
        self.pixels = pixels
        self.left = left
        self.top = top


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _LeastRecentlyUsed(Generic[K, V]):
    """A cache that drops its least recently used entries once they weigh over `budget`."""

    def __init__(self, budget: int, weigh: Callable[[V], int]) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._budget = budget
        self._weigh = weigh
        self._weight = 0

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value for `key`, made by `make()` and kept on a miss."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = self._entries[key] = make()
        self._weight += self._weigh(value)
        while self._weight > self._budget and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._weight -= self._weigh(dropped)
        return value

    def keys(self) -> list[K]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._weight = 0


def _image_bytes(image: _TextImage | None) -> int:
    return 64 if image is None else 64 + image.pixels.nbytes


# (string, font, angle, dpi, antialiased) -> its coverage, None when it draws nothing
_coverage: _LeastRecentlyUsed[tuple[Any, ...], _TextImage | None] = _LeastRecentlyUsed(
    TEXT_COVERAGE_BYTES, _image_bytes
)
# (that key, a color) -> the image in that color
_colored: _LeastRecentlyUsed[tuple[Any, ...], _TextImage | None] = _LeastRecentlyUsed(
    TEXT_IMAGE_BYTES, _image_bytes
)
_font_heights: _LeastRecentlyUsed[tuple[FontProperties, float], FontHeights] = _LeastRecentlyUsed(
    FONT_HEIGHT_ENTRIES, lambda _: 1
)


_renderers: OrderedDict[tuple[int, int, float], TextCachingRenderer] = OrderedDict()


def clear_caches() -> None:
    """Forget every kept renderer and rasterized string, as in a fresh process."""
    _renderers.clear()
    _coverage.clear()
    _colored.clear()
    _font_heights.clear()


class TextCachingRenderer(RendererAgg):
    """A RendererAgg that rasterizes each distinct string once and reuses the image.

    Plain text at 0 or 90 degrees goes through the cache; mathtext, other
    angles, a forced alpha and text with font features or a language go to
    Agg as usual.
    """

    def draw_text(
        self,
        gc: GraphicsContextBase,
        x: float,
        y: float,
        s: str,
        prop: FontProperties,
        angle: float,
        ismath: bool | str = False,
        mtext: Any = None,
    ) -> None:
        if (
            ismath
            or angle not in (0, 90)
            or gc.get_forced_alpha()  # draw_image would apply the alpha twice
            or _has_shaping_options(mtext)
        ):
            super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
            return
        key = (s, prop.copy(), angle, float(self.dpi), bool(gc.get_antialiased()))
        image = self._text_image(key, tuple(gc.get_rgb()))
        if image is None:
            return
        # x, y are measured from the top-left; draw_image takes the bottom-left
        # corner measured from the bottom.
        bottom = self.height - (round(y) + image.top + image.pixels.shape[0])
        self.draw_image(gc, round(x) + image.left, bottom, image.pixels)

    def _get_font_height_metrics(self, prop: FontProperties) -> FontHeights:
        """The font's ascent, descent and line gap in pixels, read once per font and size.

        matplotlib >= 3.11 asks a renderer that has this method instead of
        reading the font's tables again for every layout of every text; the
        values are the ones `Text._get_layout` computes without it.
        """
        dpi = float(self.dpi)
        return _font_heights.get((prop.copy(), dpi), lambda: _font_height_metrics(prop, dpi))

    def _text_image(self, key: tuple[Any, ...], rgba: tuple[float, ...]) -> _TextImage | None:
        def colored() -> _TextImage | None:
            coverage = _coverage.get(key, lambda: self._rasterize(*key))
            return None if coverage is None else _in_color(coverage, rgba)

        return _colored.get((key, rgba), colored)

    def _rasterize(
        self, s: str, prop: FontProperties, angle: float, dpi: float, antialiased: bool
    ) -> _TextImage | None:
        """Draw `s` in opaque black with Agg itself on a scratch canvas; keep its alpha."""
        width, height, _ = self.get_text_width_height_descent(s, prop, False)
        # Room for the string at either angle around a central anchor, plus a
        # margin for glyphs that reach past their advance.
        margin = math.ceil(prop.get_size_in_points() * dpi / 72) + 4
        half = math.ceil(max(width, height)) + margin
        scratch = RendererAgg(2 * half, 2 * half, dpi)
        gc = scratch.new_gc()
        gc.set_foreground((0.0, 0.0, 0.0, 1.0), isRGBA=True)
        gc.set_antialiased(antialiased)
        RendererAgg.draw_text(scratch, gc, half, half, s, prop, angle)
        gc.restore()
        alpha = np.asarray(scratch.buffer_rgba())[..., 3]
        rows = np.flatnonzero(alpha.any(axis=1))
        cols = np.flatnonzero(alpha.any(axis=0))
        if rows.size == 0:
            return None  # blanks only
        coverage = alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        return _TextImage(coverage.copy(), int(cols[0]) - half, int(rows[0]) - half)


def _in_color(coverage: _TextImage, rgba: tuple[float, ...]) -> _TextImage:
    """The coverage as an RGBA image in one color, rows bottom to top as draw_image wants."""
    alpha = coverage.pixels[::-1]
    pixels = np.empty((*alpha.shape, 4), dtype=np.uint8)
    pixels[..., :3] = np.round(np.asarray(rgba[:3]) * 255).astype(np.uint8)
    pixels[..., 3] = alpha if rgba[3] >= 1 else np.round(alpha * rgba[3]).astype(np.uint8)
    return _TextImage(pixels, coverage.left, coverage.top)


def _font_height_metrics(prop: FontProperties, dpi: float) -> FontHeights:
    font = get_font(findfont(prop))
    head = font.get_sfnt_table("head")
    if head is None:
        return None, None, None  # matplotlib then measures "lp" instead
    scale = prop.get_size_in_points() * dpi / 72 / head["unitsPerEm"]
    # The typographic metrics (OS/2) where the font has them, else the horizontal header's.
    if (os2 := font.get_sfnt_table("OS/2")) is not None:
        ascent, descent, gap = os2["sTypoAscender"], -os2["sTypoDescender"], os2["sTypoLineGap"]
    elif (hhea := font.get_sfnt_table("hhea")) is not None:
        ascent, descent, gap = hhea["ascent"], -hhea["descent"], hhea["lineGap"]
    else:
        return None, None, None
    return ascent * scale, descent * scale, gap * scale


def _has_shaping_options(mtext: Any) -> bool:
    """Font features or a language (matplotlib >= 3.11) change shaping: not cached."""
    if mtext is None:
        return False
    features = getattr(mtext, "get_fontfeatures", lambda: None)()
    language = getattr(mtext, "get_language", lambda: None)()
    return bool(features) or bool(language)


def shared_renderer(width: int, height: int, dpi: float) -> TextCachingRenderer:
    """The renderer kept for this pixel size; its text metrics cache outlives each figure."""
    key = (width, height, float(dpi))
    renderer = _renderers.get(key)
    if renderer is None:
        renderer = _renderers[key] = TextCachingRenderer(width, height, dpi)
        if len(_renderers) > MAX_RENDERERS:
            _renderers.popitem(last=False)
    _renderers.move_to_end(key)
    return renderer


class PlotCanvas(FigureCanvasAgg):
    """An Agg canvas that draws with the shared renderer for its size."""

    def get_renderer(self) -> RendererAgg:
        width, height = self.get_width_height(physical=True)
        self.renderer = shared_renderer(width, height, self.figure.dpi)
        return self.renderer


def render_png(figure: Figure) -> bytes:
    """Draw `figure` on a `PlotCanvas` and return it as PNG bytes."""
    canvas = PlotCanvas(figure)
    canvas.draw()
    return encode_png(np.asarray(canvas.buffer_rgba()), dpi=figure.dpi)


def encode_png(rgba: np.ndarray, *, dpi: float | None = None) -> bytes:
    """An RGBA PNG of `rgba` ((height, width, 4) uint8, as Agg draws it).

    Every row uses the "up" filter: on plots (flat areas, lines) it compresses
    about as well as trying all five filters per row, and numpy does it in
    one subtraction. The alpha channel stays: dropping it is a strided copy
    that costs more than compressing it (an opaque alpha filters to zeros).
    No text chunks, so the bytes depend on the pixels alone.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected (height, width, 4) uint8 pixels, got {rgba.shape} {rgba.dtype}")
    height, width = rgba.shape[:2]
    filtered = np.empty((height, width * 4 + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type "up"
    scanlines = filtered[:, 1:].reshape(height, width, 4)
    scanlines[0] = rgba[0]
    np.subtract(rgba[1:], rgba[:-1], out=scanlines[1:])  # wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunks = [_png_chunk(b"IHDR", header)]
    if dpi is not None:
        per_meter = round(dpi / _METERS_PER_INCH)
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", per_meter, per_meter, 1)))
    chunks.append(_png_chunk(b"IDAT", zlib.compress(filtered.data, PNG_COMPRESSION)))
    chunks.append(_png_chunk(b"IEND", b""))
    return PNG_SIGNATURE + b"".join(chunks)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
