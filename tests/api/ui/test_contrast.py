"""The stylesheet's colours meet WCAG 2.2 on the pages' backgrounds, read from the CSS itself.

Text (`color`) needs a contrast ratio of 4.5:1 (AA, 1.4.3) against the background it
sits on: its own rule's, or else white and every tint the page paints behind text
(header, code, verdicts). A focus indicator (`outline`) needs 3:1 (1.4.11) against
each of them. A colour added or changed in api/ui/static/gradwatch.css is checked
without touching this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import api.ui

CSS = Path(api.ui.__file__).parent / "static" / "gradwatch.css"
HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")
WHITE = "#ffffff"


def rules(css: str) -> list[tuple[str, dict[str, str]]]:
    """(selector, declarations) of each rule, `var(--name)` resolved from :root."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    parsed = [
        (selector.strip(), dict(_declarations(body)))
        for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css)
    ]
    variables = next(decls for selector, decls in parsed if selector == ":root")

    def resolve(value: str) -> str:
        return re.sub(r"var\((--[\w-]+)\)", lambda m: variables[m[1]], value)

    return [(s, {k: resolve(v) for k, v in d.items()}) for s, d in parsed if s != ":root"]


def _declarations(body: str) -> list[tuple[str, str]]:
    pairs = (part.split(":", 1) for part in body.split(";") if ":" in part)
    return [(name.strip(), value.strip()) for name, value in pairs]


def luminance(colour: str) -> float:
    """WCAG relative luminance of #rgb or #rrggbb."""
    digits = (colour_of(colour) or "")[1:]
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def colour_of(value: str) -> str | None:
    """The value's colour as #rrggbb, lower case."""
    match = HEX.search(value)
    if match is None:
        return None
    digits = match[0][1:].lower()
    return "#" + ("".join(c * 2 for c in digits) if len(digits) == 3 else digits)


def background(declarations: dict[str, str]) -> str | None:
    return colour_of(declarations.get("background", declarations.get("background-color", "")))


RULES = rules(CSS.read_text())
# What text may sit on when its rule paints no background of its own.
PAGE_BACKGROUNDS = sorted(
    {WHITE} | {b for _, d in RULES if "color" not in d and (b := background(d)) is not None}
)


def text_pairs() -> list[tuple[str, str, str]]:
    pairs = []
    for selector, declarations in RULES:
        ink = colour_of(declarations.get("color", ""))
        if ink is None:
            continue
        own = background(declarations)
        pairs += [(selector, ink, back) for back in ([own] if own else PAGE_BACKGROUNDS)]
    return pairs


def outline_pairs() -> list[tuple[str, str, str]]:
    return [
        (selector, ring, back)
        for selector, declarations in RULES
        if (ring := colour_of(declarations.get("outline", declarations.get("outline-color", ""))))
        for back in PAGE_BACKGROUNDS
    ]


def test_the_stylesheet_is_read() -> None:
    """The parser finds what the checks below rely on, so they cannot pass on nothing."""
    assert len(text_pairs()) >= 10
    assert [selector for selector, _, _ in outline_pairs()][:1] == [":focus-visible"]
    assert WHITE in PAGE_BACKGROUNDS and len(PAGE_BACKGROUNDS) >= 3


@pytest.mark.parametrize(("selector", "ink", "back"), text_pairs())
def test_text_has_4_5_to_1_contrast(selector: str, ink: str, back: str) -> None:
    assert contrast(ink, back) >= 4.5, f"{selector}: {ink} on {back} is {contrast(ink, back):.2f}"


@pytest.mark.parametrize(("selector", "ring", "back"), outline_pairs())
def test_a_focus_outline_has_3_to_1_contrast(selector: str, ring: str, back: str) -> None:
    assert contrast(ring, back) >= 3, f"{selector}: {ring} on {back} is {contrast(ring, back):.2f}"


def test_the_contrast_ratio_is_wcags() -> None:
    """Reference values: black on white 21:1; the old amber outline 2.15:1."""
    assert contrast("#000", WHITE) == pytest.approx(21)
    assert contrast("#f59e0b", WHITE) == pytest.approx(2.15, abs=0.01)
    assert contrast("#767676", WHITE) == pytest.approx(4.54, abs=0.01)


def test_chart_lines_have_3_to_1_contrast() -> None:
    """The charts' series colours (js/chart.js's PALETTE) are graphics a reader must tell
    from the white plot: 3:1 (1.4.11)."""
    script = (CSS.parent / "js/chart.js").read_text()
    palette = re.search(r"const PALETTE = \[([^\]]*)\]", script)
    assert palette, "js/chart.js names its series colours in PALETTE"
    colours = HEX.findall(palette[1])
    assert len(colours) >= 4
    for colour in colours:
        assert contrast(colour, WHITE) >= 3, f"{colour} is {contrast(colour, WHITE):.2f}"
