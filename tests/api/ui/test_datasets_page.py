"""Uploaded datasets in a real browser: upload, list, refuse, delete, train on one."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import FilePayload, Page, expect

from tests.api.ui.conftest import JOB_MS
from tests.api.ui.prefixed import PREFIX
from tests.conftest import KeysServer, Server, Worker, keys_env, serve_api


def points_csv(rows: int = 40) -> bytes:
    """Two classes in 2-D, `up` above the diagonal; a random first row makes the bytes
    (so the dataset) this test's own."""
    rng = secrets.SystemRandom()
    lines = [f"{rng.random():.6f},{rng.random():.6f},up"]
    for i in range(1, rows):
        a, b = (i * 37 % 97) / 97, (i * 61 % 89) / 89
        lines.append(f"{a:.4f},{b:.4f},{'up' if b > a else 'down'}")
    return ("a,b,side\n" + "\n".join(lines) + "\n").encode()


def choose_file(page: Page, name: str, body: bytes) -> None:
    chosen: FilePayload = {"name": name, "mimeType": "text/csv", "buffer": body}
    page.set_input_files("#upload-file", files=[chosen])


@pytest.fixture
def open_mode(api_server: Server) -> Iterator[httpx.Client]:
    """A client of the open-mode service; what a test uploads is deleted after it."""
    with api_server.client() as client:
        before = {
            d["id"] for d in client.get("/v1/datasets", params={"limit": 200}).json()["items"]
        }
        yield client
        for item in client.get("/v1/datasets", params={"limit": 200}).json()["items"]:
            if item["id"] not in before:
                client.delete(f"/v1/datasets/{item['id']}")


def test_a_csv_uploaded_on_the_page_is_listed_trained_on_and_deleted(
    page: Page, api_server: Server, worker_process: Worker, open_mode: httpx.Client
) -> None:
    page.goto(f"{api_server.url}/")
    page.click("nav >> text=Datasets")
    page.wait_for_url(f"{api_server.url}/datasets")
    choose_file(page, "corner.csv", points_csv())
    page.fill("#upload-label", "side")
    page.click("#upload-button")
    uploaded = page.locator("#uploaded")
    expect(uploaded).to_contain_text("corner.csv: uploaded")
    expect(page.locator("#upload-state")).to_have_text("Uploaded corner.csv.")
    dataset_id = page.locator("#uploaded-facts code").first.inner_text()
    shown = open_mode.get(f"/v1/datasets/{dataset_id}").json()
    assert shown["samples"] == 40 and shown["classes"] == ["down", "up"]
    expect(uploaded).to_contain_text("2: down, up")
    expect(uploaded).to_contain_text("2 (2 values)")
    # Listed, newest first, on this page and on the next visit.
    page.reload()
    row = page.locator(f"#datasets tr[data-id='{dataset_id}']")
    expect(row).to_contain_text("corner.csv")
    expect(row).to_contain_text("csv, classification")
    assert page.locator("#datasets tbody tr").first.get_attribute("data-id") == dataset_id

    # Train on it: the link opens New with the dataset picked into the spec.
    row.get_by_role("link", name="Train on corner.csv").click()
    page.wait_for_url(re.compile(rf"/new\?dataset={dataset_id}$"))
    expect(page.locator("#f-dataset")).to_have_value(dataset_id)
    expect(page.locator("#f-dataset option:checked")).to_contain_text("corner.csv: 40 samples")
    page.fill("#f-epochs", "20")
    spec = json.loads(page.input_value("#experiment-json"))
    assert spec == {"dataset": {"kind": "uploaded", "id": dataset_id}, "training": {"epochs": 20}}
    page.click("#experiment-form button[type=submit]")
    page.wait_for_url(re.compile(r"/experiments/[0-9A-Z]{26}$"))
    expect(page.locator("#dataset")).to_contain_text(f"corner.csv (uploaded dataset {dataset_id})")
    expect(page.locator("#status")).to_have_text("succeeded", timeout=JOB_MS)
    # Once done, the result's own account of the data.
    expect(page.locator("#dataset")).to_contain_text("validation samples, 2 classes")
    expect(page.locator("#plots img[data-plot='boundary']")).to_be_attached()

    # Delete it from the list: gone from the page and from the service.
    page.goto(f"{api_server.url}/datasets")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete corner.csv").click()
    expect(row).to_have_count(0)
    expect(page.locator("#upload-state")).to_have_text("Deleted corner.csv.")
    assert open_mode.get(f"/v1/datasets/{dataset_id}").status_code == 404


def test_a_bad_file_shows_the_problem_naming_its_row_and_column(
    page: Page, api_server: Server, open_mode: httpx.Client
) -> None:
    before = open_mode.get("/v1/datasets").json()["items"]
    page.goto(f"{api_server.url}/datasets")
    page.click("#upload-button")  # no file yet
    expect(page.locator("#upload-file-error")).to_have_text("choose a CSV or NPZ file to upload")
    choose_file(page, "typo.csv", b"x1,x2,label\n1,2,a\n3,four,b\n")
    page.click("#upload-button")
    error = page.locator("#upload-file-error")
    expect(error).to_contain_text("row 3, column 'x2'")
    expect(error).to_contain_text("four")
    expect(page.locator("#upload-file")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#upload-file")).to_be_focused()
    expect(page.locator("#uploaded")).to_be_hidden()
    # A query parameter's problem is shown beside its own field.
    choose_file(page, "ok.csv", points_csv())
    page.fill("#upload-label", "side")
    page.evaluate("document.querySelector('#upload-name').removeAttribute('maxlength')")
    page.fill("#upload-name", "x" * 201)
    page.click("#upload-button")
    expect(page.locator("#upload-name-error")).to_contain_text("at most 200 characters")
    expect(page.locator("#upload-file-error")).to_be_empty()
    assert open_mode.get("/v1/datasets").json()["items"] == before


def test_a_dataset_in_use_is_kept_and_the_page_says_by_which_run(
    page: Page, api_server: Server, open_mode: httpx.Client
) -> None:
    sent = open_mode.post(
        "/v1/datasets", params={"label": "side"}, files={"file": ("busy.csv", points_csv())}
    )
    dataset_id = sent.json()["id"]
    # No GPU worker here: the job stays queued, and the dataset in use.
    spec = {"device": "gpu", "dataset": {"kind": "uploaded", "id": dataset_id}}
    job_id = open_mode.post("/v1/experiments", json=spec).json()["id"]
    page.goto(f"{api_server.url}/datasets")
    page.on("dialog", lambda dialog: dialog.accept())
    delete = page.get_by_role("button", name="Delete busy.csv")
    delete.click()
    row = page.locator(f"#datasets tr[data-id='{dataset_id}']")
    expect(row.locator(".field-error")).to_contain_text("used by 1 queued or running experiment(s)")
    expect(row.get_by_role("link", name=job_id)).to_have_attribute("href", f"/experiments/{job_id}")
    expect(delete).to_be_focused()
    open_mode.post(f"/v1/experiments/{job_id}/cancel")
    delete.click()
    expect(row).to_have_count(0)


def test_the_new_page_picks_an_uploaded_dataset_into_the_spec(
    page: Page, api_server: Server, open_mode: httpx.Client
) -> None:
    sent = open_mode.post(
        "/v1/datasets", params={"label": "side"}, files={"file": ("pick.csv", points_csv())}
    )
    dataset_id = sent.json()["id"]
    page.goto(f"{api_server.url}/new")
    picker = page.get_by_label("Uploaded dataset")
    expect(picker.locator(f"option[value='{dataset_id}']")).to_contain_text("pick.csv")
    page.fill("#experiment-json", '{"dataset": {"n_samples": 300, "validation_split": 0.3}}')
    page.dispatch_event("#experiment-json", "input")
    picker.select_option(dataset_id)
    # What only a generated set takes goes; what an uploaded one takes stays.
    spec = json.loads(page.input_value("#experiment-json"))
    assert spec["dataset"] == {"kind": "uploaded", "id": dataset_id, "validation_split": 0.3}
    # Another preset keeps the choice.
    page.select_option("#experiment-preset", index=2)
    assert json.loads(page.input_value("#experiment-json"))["dataset"]["id"] == dataset_id
    picker.select_option("")
    assert "kind" not in json.loads(page.input_value("#experiment-json")).get("dataset", {})
    # The service's reason about the dataset shows beside the picker.
    page.fill(
        "#experiment-json", '{"dataset": {"kind": "uploaded", "id": "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"}}'
    )
    page.dispatch_event("#experiment-json", "input")
    expect(picker).to_have_value("01JD8X3Q7R5M2N4P6T8V0W2Y4Z")
    page.click("#experiment-form button[type=submit]")
    expect(page.locator("#f-dataset-error")).not_to_be_empty()
    expect(picker).to_have_attribute("aria-invalid", "true")


@pytest.fixture(scope="module")
def capped(service_env: dict[str, str]) -> Iterator[KeysServer]:
    """An API with API keys whose uploads are 1 MB at most."""
    env, keys = keys_env(service_env, dataset_max_megabytes=1)
    with serve_api(env) as server:
        yield KeysServer(server.url, server.process, keys, env["GRADWATCH_SHARE_SECRET"])


def test_with_keys_an_upload_over_the_cap_is_refused_with_the_limit(
    page: Page, capped: KeysServer
) -> None:
    key = capped.keys["carol"]
    sent: list[tuple[str, str, str | None]] = []
    page.on("request", lambda r: sent.append((r.method, r.url, r.headers.get("authorization"))))
    page.goto(f"{capped.url}/datasets")
    expect(page.locator("#page-error")).to_contain_text("needs an API key")
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#datasets tbody")).to_contain_text("No datasets yet")
    expect(page.locator("main")).to_contain_text("1 MB at most")
    big = b"a,label\n" + b"0.5,1\n0.25,2\n" * 90_000  # 1.2 MB
    choose_file(page, "big.csv", big)
    page.click("#upload-button")
    expect(page.locator("#upload-file-error")).to_contain_text(
        "over this service's limit of 1.0 MB"
    )
    # A page that did not know the limit: the service's 413 says it.
    page.evaluate("delete document.querySelector('#upload-form').dataset.maxBytes")
    page.click("#upload-button")
    expect(page.locator("#upload-file-error")).to_contain_text("over the limit of 1 MB")
    # Within the cap, with the key: uploaded as carol's.
    choose_file(page, "small.csv", points_csv())
    page.fill("#upload-label", "side")
    page.click("#upload-button")
    expect(page.locator("#upload-state")).to_have_text("Uploaded small.csv.")
    with capped.client_of("carol") as carol:
        assert [d["name"] for d in carol.get("/v1/datasets").json()["items"]] == ["small.csv"]
    assert not any(key in url for _, url, _ in sent)
    uploads = [auth for method, url, auth in sent if method == "POST" and "/v1/datasets" in url]
    assert len(uploads) == 2 and set(uploads) == {f"Bearer {key}"}  # the 413 and small.csv


def test_behind_a_path_prefix_an_upload_has_its_own_cap_and_links_keep_the_prefix(
    page: Page, service_env: dict[str, str], open_mode: httpx.Client
) -> None:
    # 150 KB: past the 64 KiB of a spec, well within an upload's cap.
    body = points_csv(8_000)
    assert len(body) > 128 * 1024
    with serve_api(service_env, "tests.api.ui.prefixed:app", PREFIX) as server:
        page.goto(f"{server.url}{PREFIX}/")
        page.click("nav >> text=Datasets")
        page.wait_for_url(f"{server.url}{PREFIX}/datasets")
        choose_file(page, "many.csv", body)
        page.fill("#upload-label", "side")
        page.click("#upload-button")
        expect(page.locator("#upload-state")).to_have_text("Uploaded many.csv.")
        dataset_id = page.locator("#uploaded-facts code").first.inner_text()
        row = page.locator(f"#datasets tr[data-id='{dataset_id}']")
        expect(row.get_by_role("link", name="Train on many.csv")).to_have_attribute(
            "href", f"{PREFIX}/new?dataset={dataset_id}"
        )
        expect(page.locator("#uploaded-train")).to_have_attribute(
            "href", f"{PREFIX}/new?dataset={dataset_id}"
        )
