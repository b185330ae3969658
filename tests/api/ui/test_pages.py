"""The web UI in a real browser, on a real service: forms, live progress, results, studies."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from core.client import Client
from tests.api.conftest import UNTRAINED
from tests.api.ui.conftest import JOB_MS
from tests.api.ui.prefixed import PREFIX
from tests.conftest import MEDIUM_SPEC, KeysServer, Server, Worker, serve_api

# Plots other than the two the worker draws are drawn on their first request.
PLOTS_MS = 120_000
STUDY: dict[str, Any] = {
    "base": {"seed": 4, "dataset": {"n_samples": 200}, "training": {"epochs": 3}},
    "axes": {"model.activation": ["tanh", "relu"]},
    "seeds": 1,
}


def all_images_loaded(page: Page, selector: str) -> None:
    page.wait_for_function(
        f"""() => {{
            const images = [...document.querySelectorAll({json.dumps(selector)})];
            return images.length > 0 && images.every((i) => i.complete && i.naturalWidth > 0);
        }}""",
        timeout=PLOTS_MS,
    )


def stays_on_origin(page: Page, origin: str) -> list[str]:
    """The URLs the page requests; the test checks they all stay on `origin`."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


@pytest.fixture(scope="module")
def trained_via_form(browser: Any, api_server: Server, worker_process: Worker) -> dict[str, Any]:
    """An experiment started from the form, followed on its page to the end: what was seen."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    requests = stays_on_origin(page, api_server.url)
    page.goto(f"{api_server.url}/new")
    page.fill("#experiment-json", json.dumps(MEDIUM_SPEC))
    page.dispatch_event("#experiment-json", "input")
    expect(page.locator("#f-epochs")).to_have_value("200")  # the fields follow the JSON
    page.fill("#f-epochs", "150")  # ... and the JSON follows the fields
    assert json.loads(page.input_value("#experiment-json"))["training"]["epochs"] == 150
    page.click("#experiment-form button[type=submit]")
    page.wait_for_url(re.compile(r"/experiments/[0-9A-Z]{26}$"))
    job_id = page.url.rsplit("/", 1)[1]
    # Progress moves: seen strictly between the start and the end.
    page.wait_for_function(
        "() => { const p = document.querySelector('#progress');"
        " return p.value > 0 && p.value < p.max; }",
        timeout=JOB_MS,
    )
    midway = page.inner_text("#progress-text")
    expect(page.locator("#status")).to_have_text("succeeded", timeout=JOB_MS)
    expect(page.locator("#verdicts")).to_be_visible()
    all_images_loaded(page, "#plots img")
    seen = {
        "id": job_id,
        "midway": midway,
        "verdicts": page.inner_text("#verdicts"),
        "plots": page.locator("#plots img").count(),
        "canvases": page.locator("#chart-series canvas, #chart-history canvas").count(),
        "requests": list(requests),
    }
    # Hover a chart: its legend shows each layer's value at that point.
    over = page.locator("#chart-series .u-over")
    box = over.bounding_box()
    assert box is not None
    over.hover(position={"x": box["width"] / 2, "y": box["height"] / 2})
    seen["legend"] = page.inner_text("#chart-series .u-legend")
    page.select_option("#series-quantity", "kernel.weight_norm")
    seen["retitled"] = page.inner_text("#chart-series .u-title")
    context.close()
    return seen


def test_an_experiment_started_from_the_form_shows_progress_then_its_result(
    trained_via_form: dict[str, Any], api_server: Server
) -> None:
    seen = trained_via_form
    assert re.fullmatch(r"epoch \d+ of 150", seen["midway"]), seen["midway"]
    assert seen["verdicts"] and "Evidence" in seen["verdicts"]
    with httpx.Client(base_url=api_server.url) as client:
        plots = client.get(f"/v1/experiments/{seen['id']}/plots").json()["items"]
    assert seen["plots"] == len(plots) >= 5
    assert seen["canvases"] == 2


def test_its_charts_are_interactive(trained_via_form: dict[str, Any]) -> None:
    legend = trained_via_form["legend"]
    assert "hidden_1" in legend and "output" in legend
    assert re.search(r"\d\.\d", legend), legend  # a value under the cursor
    assert trained_via_form["retitled"] == "weight norm (kernel) by layer"


def test_its_charts_work_from_the_keyboard(
    trained_via_form: dict[str, Any], page: Page, api_server: Server
) -> None:
    """Tab reaches each chart; the keys step through the points, zoom in and out and show
    it all, and each writes the point's values under the chart, in a live region."""
    job_id = trained_via_form["id"]
    with httpx.Client(base_url=api_server.url) as client:
        loss = client.get(f"/v1/experiments/{job_id}/result").json()["history"]["loss"]
    assert len(loss) == 150
    page.goto(f"{api_server.url}/experiments/{job_id}")
    expect(page.locator("#chart-history canvas")).to_have_count(1, timeout=JOB_MS)
    page.focus("#series-quantity")
    page.keyboard.press("Tab")
    expect(page.locator("#chart-series")).to_be_focused()
    page.keyboard.press("End")
    series = page.locator("#chart-series .chart-readout")
    expect(series).to_have_text(re.compile(r"^epoch 150: hidden_1 \S+, .*output \S+$"))
    page.keyboard.press("Tab")
    chart = page.locator("#chart-history")
    expect(chart).to_be_focused()
    readout = chart.locator(".chart-readout")
    expect(readout).to_have_attribute("aria-live", "polite")
    legend_epoch = chart.locator(".u-legend .u-series").first.locator(".u-value")

    def shown(key: str, pattern: str) -> re.Match[str]:
        page.keyboard.press(key)
        # the browser reads the pattern, and its regular expressions have no (?P<name>...)
        expect(readout).to_have_text(re.compile(re.sub(r"\(\?P<\w+>", "(", pattern)))
        match = re.search(pattern, readout.inner_text())
        assert match, readout.inner_text()
        return match

    def loss_at(match: re.Match[str]) -> None:
        epoch, value = int(match["epoch"]), float(match["loss"])
        assert value == pytest.approx(loss[epoch - 1], rel=1e-3), (epoch, value)
        expect(legend_epoch).to_have_text(str(epoch))  # the cursor is on the point too

    point = r"epoch (?P<epoch>\d+): loss (?P<loss>[\d.e+-]+), accuracy [\d.e+-]+$"
    first = shown("Home", "^" + point)
    assert first["epoch"] == "1"
    loss_at(first)
    loss_at(shown("ArrowRight", point))
    assert int(shown("ArrowRight", point)["epoch"]) == 3
    assert int(shown("ArrowLeft", point)["epoch"]) == 2
    loss_at(shown("End", point))

    in_view = r"^epochs (?P<low>\d+) to (?P<high>\d+) of 1 to 150 shown; " + point
    zoomed = shown("+", in_view)
    low, high = int(zoomed["low"]), int(zoomed["high"])
    assert high == 150 and 60 <= high - low <= 90, (low, high)  # half of it, at the end
    closer = shown("+", in_view)
    assert 25 <= int(closer["high"]) - int(closer["low"]) <= 45, closer.groups()
    step = shown("Home", point)
    assert int(step["epoch"]) == int(closer["low"])  # Home is the first point in view
    wider = shown("-", in_view)
    assert int(wider["high"]) - int(wider["low"]) > int(closer["high"]) - int(closer["low"])
    whole = shown("0", in_view)
    assert (whole["low"], whole["high"]) == ("1", "150")


def test_the_pages_load_nothing_from_elsewhere(
    trained_via_form: dict[str, Any], api_server: Server
) -> None:
    requests = trained_via_form["requests"]
    assert any("/ui/static/vendor/uPlot.iife.min.js" in url for url in requests)
    assert all(url.startswith((api_server.url, "blob:", "data:")) for url in requests), requests


def test_a_field_error_is_shown_beside_its_field(page: Page, api_server: Server) -> None:
    page.goto(f"{api_server.url}/new")
    page.fill("#f-epochs", "100000")
    page.click("#experiment-form button[type=submit]")
    expect(page.locator("#f-epochs-error")).to_contain_text("less than or equal to")
    expect(page.locator("#f-epochs")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-epochs")).to_be_focused()
    assert page.url.endswith("/new")

    page.fill("#f-epochs", "5")
    page.fill("#experiment-json", '{"training": {"epochs": 5}, "colour": "blue"}')
    page.click("#experiment-form button[type=submit]")
    expect(page.locator("#experiment-json-error")).to_contain_text("colour")
    expect(page.locator("#f-epochs-error")).to_be_empty()


def test_a_study_started_from_the_form_ends_with_its_summary_and_plots(
    page: Page, api_server: Server, worker_process: Worker
) -> None:
    page.goto(f"{api_server.url}/new")
    page.fill("#study-json", json.dumps(STUDY))
    page.click("#study-form button[type=submit]")
    page.wait_for_url(re.compile(r"/studies/[0-9A-Z]{26}$"))
    expect(page.locator("#status")).to_have_text("succeeded", timeout=JOB_MS)
    expect(page.locator("#progress-text")).to_have_text("2 of 2 experiments finished")
    rows = page.locator("#summary tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text('"tanh"')
    # A classification's columns: its loss and accuracy, no baseline.
    heads = ["model.activation", "seeds", "succeeded", "loss", "accuracy", "verdicts"]
    expect(page.locator("#summary thead th")).to_have_text(heads)
    study_id = page.url.rsplit("/", 1)[1]
    with Client(api_server.url) as client:
        summary = client.study_summary(study_id)
    shown = "([v, d]) => Number(v).toPrecision(d)"
    for index, row in enumerate(summary["rows"]):
        accuracy = row["accuracy"]
        assert accuracy["n"] == 1 and accuracy["std"] is None and row["baseline_loss"]["n"] == 0
        # One seed has no spread to show: the mean alone, not "± 0".
        expect(rows.nth(index).locator("td").nth(4)).to_have_text(
            page.evaluate(shown, [accuracy["mean"], 4])
        )
    expect(page.locator("#summary-regression")).to_be_hidden()
    all_images_loaded(page, "#plots img")
    expect(page.locator("#summary-csv")).to_be_visible()
    page.click("#configs tbody tr >> nth=0 >> a >> nth=0")
    page.wait_for_url(re.compile(r"/experiments/[0-9A-Z]{26}$"))
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#outcome dt")).to_have_text(["loss", "accuracy"])
    expect(page.locator("#outcome-regression")).to_be_hidden()
    history = page.locator("#chart-history")
    expect(history).to_have_attribute("aria-label", "Loss and accuracy by epoch")


def test_runs_are_listed_and_compared_side_by_side(
    page: Page, api_server: Server, trained_via_form: dict[str, Any]
) -> None:
    with httpx.Client(base_url=api_server.url) as client:
        other = client.post("/v1/experiments", json={"seed": 1, "training": {"epochs": 5}})
        other_id = other.json()["id"]
    page.goto(f"{api_server.url}/")
    first = page.locator(f"tr[data-id='{trained_via_form['id']}']")
    expect(first.locator(".status")).to_have_text("succeeded")
    second = page.locator(f"tr[data-id='{other_id}']")
    expect(second.locator(".status")).to_have_text("succeeded", timeout=JOB_MS)  # live
    expect(page.locator("#compare-button")).to_be_disabled()
    first.locator("input[type=checkbox]").check()
    second.locator("input[type=checkbox]").check()
    page.click("#compare-button")
    page.wait_for_url(re.compile(r"/compare\?ids="))
    expect(page.locator("#columns .column")).to_have_count(2)
    all_images_loaded(page, "#columns img")
    expect(page.locator("#chart-compare canvas")).to_have_count(1)
    # from the keyboard too: each run's loss at the last epoch of the longest
    page.focus("#compare-plot")
    page.keyboard.press("Tab")
    expect(page.locator("#chart-compare")).to_be_focused()
    page.keyboard.press("End")
    readout = page.locator("#chart-compare .chart-readout")
    expect(readout).to_contain_text("epoch 150: ")
    expect(readout).to_contain_text(f"{trained_via_form['id'][-6:]} ")
    expect(readout).to_contain_text(f"{other_id[-6:]} \u2013")  # five epochs: no loss at 150


def test_with_keys_the_key_is_sent_as_a_header_and_never_in_a_url(
    page: Page, keys_server: KeysServer
) -> None:
    key = keys_server.keys["alice"]
    with keys_server.client_of("alice") as alice:
        job_id = alice.post("/v1/experiments", json={"seed": 2, "device": "gpu"}).json()["id"]
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))
    page.goto(f"{keys_server.url}/")
    expect(page.locator("#page-error")).to_contain_text("needs an API key")
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    expect(page.locator(f"tr[data-id='{job_id}'] .status")).to_have_text("queued")
    expect(page.locator("#key-state")).to_have_text("key saved in this browser")
    assert not any(key in url for url, _ in sent)
    api_calls = [auth for url, auth in sent if "/v1/experiments" in url]
    assert api_calls and api_calls[-1] == f"Bearer {key}"


def test_the_pages_work_behind_a_path_prefix(
    page: Page, service_env: dict[str, str], api_server: Server
) -> None:
    with serve_api(service_env, "tests.api.ui.prefixed:app", PREFIX) as server:
        queued = httpx.post(f"{server.url}{PREFIX}/v1/experiments", json=UNTRAINED)
        assert queued.status_code == 202, queued.text
        page.goto(f"{server.url}{PREFIX}/")
        row = page.locator(f"tr[data-id='{queued.json()['id']}'] a")
        expect(row).to_have_attribute("href", f"{PREFIX}/experiments/{queued.json()['id']}")
        page.click("nav >> text=New")
        page.wait_for_url(f"{server.url}{PREFIX}/new")
        expect(page.locator("#study-preset option").first).to_be_attached()


def test_a_run_s_prescriptions_are_proven_from_its_page(
    page: Page, api_server: Server, worker_process: Worker
) -> None:
    with Client(api_server.url) as client:
        run = client.wait(client.submit({"seed": 1, "training": {"epochs": 5}})["id"])
        assert run["summary"] and run["summary"]["verdicts"] == ["vanishing"]
        page.goto(f"{api_server.url}/experiments/{run['id']}")
        expect(page.locator("#remedies")).to_be_visible(timeout=JOB_MS)
        # Each prescription says what the fix did where it was measured: the ranking's evidence.
        fixes = client.result(run["id"])["diagnosis"]["prescriptions"]["vanishing"]
        shown = page.locator("[data-verdict='vanishing'] .measured")
        expect(shown).to_have_count(len(fixes))
        first = fixes[0]["measured"]
        assert fixes[0]["support"] == "helps"
        expect(shown.first).to_contain_text(
            f"Helps — measured on {first['network']}, {first['seeds']} seeds: the verdict cleared "
            f"in {first['cleared']} of the {first['had']} seeds that had it; "
            f"accuracy +{first['accuracy_change']['mean']:.3f}"
        )
        page.fill("#remedy-seeds", "100")
        page.click("#prove")
        seeds_error = page.locator("#remedy-seeds-error")
        expect(seeds_error).to_have_text(re.compile("^Input should be less"))
        expect(page.locator("#remedy-seeds")).to_have_attribute("aria-invalid", "true")
        page.fill("#remedy-seeds", "1")
        page.click("#prove")
        page.wait_for_url(re.compile(r"/studies/[0-9A-Z]{26}$"))
        study_id = page.url.rsplit("/", 1)[1]
        client.cancel_study(study_id)  # its training is not what this test is about
        expect(page.locator("#configs tbody th").first).to_have_text("baseline")
        assert client.get(run["id"])["remedy_studies"] == [study_id]
