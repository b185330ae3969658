"""A remedy study at a glance: what each fix did against the run it was prescribed for.

remedies  three panels, one row per fix: in how many of the baseline's seeds
          the verdicts it was prescribed for cleared; its final accuracy (or,
          for a regression, loss) minus the baseline's, mean and S.D. over the
          seeds; the first-to-last gradient ratio of the baseline and with the
          fix, on the diagnosis' scale, its healthy band shaded

Drawn from the series' `remedies` section, the study summary's
(core/experiment/remedy_studies.py `remedy_summary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from core.experiment.diagnosis import EXPLODING_RATIO, VANISHING_RATIO
from core.plotting.kinds import Need, PlotKind
from core.plotting.layout import Frame, InViewLogLocator
from core.plotting.study.axes import config_colors, style_axes, suptitle
from core.plotting.style import Style, power_of_ten

HEALTHY = "#e3f1e3"  # the band of ratios no depth verdict is given for
BASELINE = "#7f7f7f"


def _cleared(row: Mapping[str, Any]) -> tuple[int, int]:
    """(seeds cleared, seeds whose baseline had a verdict the fix was prescribed for)."""
    verdicts = row["verdicts"]
    return sum(v["cleared"] for v in verdicts), sum(v["baseline"] for v in verdicts)


def _change(fixes: Sequence[Mapping[str, Any]]) -> tuple[str, list[Mapping[str, Any]]]:
    """Accuracy's change when the runs have one, else the loss's (a regression)."""
    if any(row["accuracy_change"]["mean"] is not None for row in fixes):
        return "accuracy", [row["accuracy_change"] for row in fixes]
    return "loss", [row["loss_change"] for row in fixes]


def _log_x(ax: Axes) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(InViewLogLocator(base=10.0, numticks=6))
    ax.xaxis.set_major_formatter(FuncFormatter(power_of_ten))
    ax.xaxis.set_minor_locator(NullLocator())


def _draw_cleared(ax: Axes, fixes: Sequence[Mapping[str, Any]], colors: Sequence[str],
                  style: Style) -> None:  # fmt: skip
    for y, (row, color) in enumerate(zip(fixes, colors, strict=True)):
        cleared, had = _cleared(row)
        share = cleared / had if had else 0.0
        ax.barh(y, share, height=0.6, color=color)
        ax.text(min(share, 1.0) + 0.03, y, f"{cleared}/{had}", va="center",
                fontsize=style.pt(8.0))  # fmt: skip
    ax.set_xlim(0.0, 1.35)
    ax.set_xticks([0.0, 0.5, 1.0], ["0", "½", "all"])
    style_axes(ax, style, "verdict cleared", xlabel="of the baseline's seeds")


def _draw_change(ax: Axes, metric: str, changes: Sequence[Mapping[str, Any]],
                 colors: Sequence[str], style: Style) -> None:  # fmt: skip
    ax.axvline(0.0, color=BASELINE, linewidth=style.pt(1.0))
    for y, (change, color) in enumerate(zip(changes, colors, strict=True)):
        if change["mean"] is None:
            continue
        ax.barh(y, change["mean"], height=0.6, color=color)
        if change["std"] is not None:
            ax.errorbar(change["mean"], y, xerr=change["std"], color="#333333",
                        capsize=style.pt(3.0), linewidth=style.pt(1.0))  # fmt: skip
    style_axes(ax, style, f"{metric} change", xlabel="mean ± S.D.")


def _draw_ratio(ax: Axes, fixes: Sequence[Mapping[str, Any]], colors: Sequence[str],
                style: Style) -> None:  # fmt: skip
    ax.axvspan(VANISHING_RATIO, EXPLODING_RATIO, color=HEALTHY, linewidth=0)
    marker = style.pt(6.0)
    seen: list[float] = []
    for y, (row, color) in enumerate(zip(fixes, colors, strict=True)):
        before, after = row["gradient_ratio"]["before"], row["gradient_ratio"]["after"]
        shown = [v for v in (before, after) if v is not None and v > 0]
        seen += shown
        if len(shown) == 2:
            ax.annotate("", (after, y), (before, y), arrowprops={
                "arrowstyle": "->", "color": color, "linewidth": style.pt(1.4)})  # fmt: skip
        if before is not None and before > 0:
            ax.plot([before], [y], "o", color=BASELINE, markersize=marker, fillstyle="none")
        if after is not None and after > 0:
            ax.plot([after], [y], "o", color=color, markersize=marker)
    low = min([*seen, VANISHING_RATIO]) / 3
    high = max([*seen, VANISHING_RATIO * 10]) * 3
    ax.set_xlim(low, high)
    _log_x(ax)
    style_axes(ax, style, "gradient ratio", xlabel="○ baseline → ● fix")


def _draw_remedies(figure: Figure, series: Mapping[str, Any], style: Style) -> Frame:
    summary = series["remedies"]
    fixes = summary["fixes"]
    colors = config_colors(len(fixes) + 1)[1:]  # configuration 0, the baseline, keeps the first
    axes = figure.subplots(1, 3, sharey=True, squeeze=False)[0]
    metric, changes = _change(fixes)
    _draw_cleared(axes[0], fixes, colors, style)
    _draw_change(axes[1], metric, changes, colors, style)
    _draw_ratio(axes[2], fixes, colors, style)
    axes[0].set_yticks(range(len(fixes)), [row["fix"] for row in fixes])
    axes[0].set_ylim(len(fixes) - 0.5, -0.5)  # the best-ranked fix on top
    seeds = summary["baseline"]["seeds"]
    title = f"Each fix against the baseline, {seeds} seed{'s' * (seeds != 1)} (green: healthy)"
    return Frame(title=suptitle(figure, title, len(fixes), len(fixes), style))


def _has_remedies(series: Mapping[str, Any]) -> bool:
    return bool((series.get("remedies") or {}).get("fixes"))


REMEDIES = PlotKind(
    name="remedies",
    description="a remedy study's fixes against its baseline: seeds where the verdict "
    "cleared, the accuracy change (mean ± S.D.) and the gradient ratio before and after",
    need=Need(
        _has_remedies,
        "this study proves no prescriptions (POST /v1/experiments/{id}/remedies)",
        # A remedy study's alone, and its specs do not say they are one: its submission adds it.
        planned=lambda specs: False,
    ),
    draw=_draw_remedies,
)
