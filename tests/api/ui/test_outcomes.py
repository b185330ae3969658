"""Each page reads a run's outcome by its kind: a classification by its accuracy, a
regression (no accuracy) by its loss against its baseline loss, in a real browser on a
real service and worker."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from core.client import Client
from tests.api.ui.conftest import JOB_MS
from tests.conftest import Server, Worker

# The adding problem over 5 steps, on a small MLP: seconds on a warm worker.
ADDING = {"kind": "adding", "n_samples": 100, "sequence_length": 5}
BASE = {"seed": 3, "model": {"hidden_layers": [8]}, "training": {"epochs": 3}}
REGRESSION_STUDY: dict[str, Any] = {
    "base": {**BASE, "dataset": ADDING},
    "axes": {"model.activation": ["tanh", "relu"]},
    "seeds": 1,
}
MIXED_STUDY: dict[str, Any] = {
    "base": BASE,
    "axes": {"dataset": [{"kind": "circles", "n_samples": 100}, ADDING]},
    "seeds": 1,
}


def shown(page: Page, value: float, digits: int = 4) -> str:
    """`value` as the pages write a figure (its `digits` significant figures)."""
    text: str = page.evaluate("([v, d]) => Number(v).toPrecision(d)", [value, digits])
    return text


def spread(page: Page, stat: dict[str, Any]) -> str:
    """A figure over seeds: its mean, ± its S.D. where there is one (two seeds or more)."""
    mean = shown(page, stat["mean"])
    return mean if stat["std"] is None else f"{mean} ± {shown(page, stat['std'], 2)}"


def ratio(page: Page, loss: float, baseline: float) -> str:
    beat = "beat it" if loss < baseline else "did not beat it"
    return f"{shown(page, loss / baseline, 3)} ({beat})"


def finished_study(page: Page, url: str, client: Client, body: dict[str, Any]) -> dict[str, Any]:
    """Queue the study, follow it on its page to the end: its summary JSON."""
    study_id = client.submit_study(body)["id"]
    page.goto(f"{url}/studies/{study_id}")
    expect(page.locator("#status")).to_have_text("succeeded", timeout=JOB_MS)
    expect(page.locator("#summary-csv")).to_be_visible()
    return client.study_summary(study_id)


def headings(page: Page) -> list[str]:
    return page.locator("#summary thead th").all_inner_texts()


def cells(page: Page, row: int) -> list[str]:
    return page.locator(f"#summary tbody tr >> nth={row} >> td").all_inner_texts()


def test_a_regression_study_reads_each_loss_against_its_baseline(
    page: Page, api_server: Server, worker_process: Worker
) -> None:
    with Client(api_server.url) as client:
        summary = finished_study(page, api_server.url, client, REGRESSION_STUDY)
        rows = summary["rows"]
        assert [row["accuracy"]["n"] for row in rows] == [0, 0]
        assert all(row["baseline_loss"]["n"] == 1 for row in rows)
        assert headings(page) == [
            "model.activation", "seeds", "succeeded", "loss", "baseline loss",
            "loss ÷ baseline", "verdicts",
        ]  # fmt: skip
        for index, row in enumerate(rows):
            loss, baseline = row["loss"]["mean"], row["baseline_loss"]["mean"]
            assert cells(page, index)[3:6] == [
                spread(page, row["loss"]),
                spread(page, row["baseline_loss"]),
                ratio(page, loss, baseline),
            ]
        expect(page.locator("#summary-regression")).to_be_visible()

        # One of its runs: its loss and baseline where a classification shows its accuracy.
        page.click("#configs tbody tr >> nth=0 >> a >> nth=0")
        page.wait_for_url(re.compile(r"/experiments/[0-9A-Z]{26}$"))
        job = client.get(page.url.rsplit("/", 1)[1])
        run: dict[str, Any] = dict(job["summary"] or {})
        assert run["accuracy"] is None and run["baseline_loss"] is not None
        expect(page.locator("#outcome dt")).to_have_text(
            ["loss", "baseline loss (predicting the mean)", "loss ÷ baseline"]
        )
        expect(page.locator("#outcome dd")).to_have_text(
            [
                shown(page, run["loss"]),
                shown(page, run["baseline_loss"]),
                ratio(page, run["loss"], run["baseline_loss"]),
            ]
        )
        expect(page.locator("#outcome-regression")).to_be_visible()
        expect(page.locator("#chart-history")).to_have_attribute(
            "aria-label", "Loss and baseline loss by epoch"
        )
        legend = page.locator("#chart-history .u-legend").inner_text()
        assert "baseline loss" in legend and "accuracy" not in legend

        # The list of runs, and two of them side by side, say the same.
        page.goto(f"{api_server.url}/")
        listed = page.locator(f"tr[data-id='{job['id']}'] td >> nth=5")
        loss_ratio = ratio(page, run["loss"], run["baseline_loss"])
        expect(listed).to_have_text(f"regression: loss ÷ baseline {loss_ratio}")
        other = rows[1]["children"][0]
        page.goto(f"{api_server.url}/compare?ids={job['id']},{other}")
        column = page.locator(f"#columns .column[aria-label='experiment {job['id']}']")
        terms = ["loss", "baseline loss (predicting the mean)", "loss ÷ baseline"]
        expect(column.locator("dt")).to_contain_text(terms)
        expect(column).not_to_contain_text("accuracy")


def test_a_study_over_both_kinds_fills_each_row_by_its_own(
    page: Page, api_server: Server, worker_process: Worker
) -> None:
    with Client(api_server.url) as client:
        circles, adding = finished_study(page, api_server.url, client, MIXED_STUDY)["rows"]
    assert circles["accuracy"]["n"] == 1 and circles["baseline_loss"]["n"] == 0
    assert adding["accuracy"]["n"] == 0 and adding["baseline_loss"]["n"] == 1
    assert headings(page) == [
        "dataset", "seeds", "succeeded", "loss", "accuracy", "baseline loss",
        "loss ÷ baseline", "verdicts",
    ]  # fmt: skip
    assert cells(page, 0)[3:7] == [
        spread(page, circles["loss"]),
        spread(page, circles["accuracy"]),
        "n/a (classification)",
        "n/a (classification)",
    ]
    assert cells(page, 1)[3:7] == [
        spread(page, adding["loss"]),
        "n/a (regression)",
        spread(page, adding["baseline_loss"]),
        ratio(page, adding["loss"]["mean"], adding["baseline_loss"]["mean"]),
    ]


def test_a_regression_s_fixes_are_read_by_their_loss_change(
    page: Page, api_server: Server, worker_process: Worker
) -> None:
    spec = {**BASE, "dataset": ADDING, "model": {"hidden_layers": [8], "activation": "tanh"}}
    with Client(api_server.url) as client:
        run = client.wait(client.submit(spec)["id"])
        prescribed = client.result(run["id"])["diagnosis"]["prescriptions"]
        assert prescribed, run["summary"]  # tanh over 8 units on this seed: saturated, vanishing
        first = next(fix["fix"] for fixes in prescribed.values() for fix in fixes)
        study_id = client.prove_remedies(run["id"], fixes=[first], seeds=1)["id"]
        page.goto(f"{api_server.url}/studies/{study_id}")
        expect(page.locator("#status")).to_have_text("succeeded", timeout=JOB_MS)
        (fix,) = client.study_summary(study_id)["remedies"]["fixes"]
    assert fix["accuracy_change"]["n"] == 0 and fix["loss_change"]["n"] == 1
    expect(page.locator("#remedy-change")).to_have_text("Loss change (lower is better)")
    change = fix["loss_change"]["mean"]
    figure = f"{'+' if change >= 0 else ''}{shown(page, change, 3)}"
    expect(page.locator("#remedy-summary tbody td").nth(2)).to_have_text(figure)
