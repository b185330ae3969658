"""Plots over real HTTP, no worker: links, stored PNGs with ETag/304, CORS, sizes on demand."""

from __future__ import annotations

import struct

import httpx
import pytest
import redis

from core.experiment.result import dumps_result
from core.plotting.catalog import available_plots
from core.plotting.kinds import PlotSize
from core.store.keys import Keys, plot_field
from core.store.plots import MAX_CACHED_PLOTS
from tests.api.conftest import UNTRAINED, FinishedJob, problem

ORIGIN = "https://notebook.example"


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_plot_links_name_every_stored_plot(client: httpx.Client, finished_job: FinishedJob) -> None:
    job = finished_job(plots={"weights": b"w", "gradients": b"g"})

    items = client.get(f"/v1/experiments/{job.id}/plots").json()["items"]

    assert [item["name"] for item in items] == ["weights", "gradients"]
    assert items[0]["url"].endswith(f"/v1/experiments/{job.id}/plots/weights.png")
    assert items[0]["description"]
    assert client.get(items[1]["url"]).content == b"g"


def test_stored_png_has_etag_long_cache_and_cors(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    job = finished_job(plots={"weights": b"\x89PNG-weights"})
    url = f"/v1/experiments/{job.id}/plots/weights.png"

    response = client.get(url, headers={"Origin": ORIGIN})

    assert response.status_code == 200 and response.content == b"\x89PNG-weights"
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"].startswith('"')
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    # The default size asked explicitly is the same stored image.
    sized = {"width": PlotSize.WIDTH, "height": PlotSize.HEIGHT, "dpi": PlotSize.DPI}
    assert client.get(url, params=sized).headers["etag"] == response.headers["etag"]


def test_if_none_match_gives_304(client: httpx.Client, finished_job: FinishedJob) -> None:
    job = finished_job(plots={"weights": b"\x89PNG-weights"})
    url = f"/v1/experiments/{job.id}/plots/weights.png"
    etag = client.get(url).headers["etag"]

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = client.get(url, headers={"If-None-Match": header, "Origin": ORIGIN})
        assert cached.status_code == 304 and cached.content == b""
        assert cached.headers["etag"] == etag and "access-control-allow-origin" in cached.headers
    assert client.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_cors_preflight_allows_any_origin(client: httpx.Client) -> None:
    response = client.options(
        "/v1/experiments",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"width={PlotSize.MAX_WIDTH + 1}", "width"),
        (f"height={PlotSize.MIN_HEIGHT - 1}", "height"),
        ("dpi=0", "dpi"),
        ("width=wide", "width"),
    ],
)
def test_out_of_bounds_sizes_are_422(
    client: httpx.Client, finished_job: FinishedJob, query: str, field: str
) -> None:
    job = finished_job(plots={"weights": b"w"})
    body = problem(client.get(f"/v1/experiments/{job.id}/plots/weights.png?{query}"), 422)
    assert [error["field"] for error in body["errors"]] == [field]


def test_unknown_plot_name_is_404(client: httpx.Client, finished_job: FinishedJob) -> None:
    job = finished_job(plots={"weights": b"w"})
    body = problem(client.get(f"/v1/experiments/{job.id}/plots/nonsense.png"), 404)
    assert "weights" in body["detail"]


def test_an_unknown_plot_is_the_same_problem_for_a_study_as_for_an_experiment(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    job = finished_job(plots={"weights": b"w"})
    study_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"  # the name is checked before the study is read
    experiment = problem(client.get(f"/v1/experiments/{job.id}/plots/nonsense.png"), 404)
    study = problem(client.get(f"/v1/studies/{study_id}/plots/nonsense.png"), 404)
    assert experiment["type"] == "urn:gradwatch:problem:plot-not-found"
    assert study["type"] == experiment["type"]
    assert study["title"] == experiment["title"] == "Plot not found"
    assert "curves" in study["detail"] and "weights" in experiment["detail"]


def test_plot_of_an_unfinished_job_is_409(client: httpx.Client) -> None:
    job_id = client.post("/v1/experiments", json=UNTRAINED).json()["id"]
    body = problem(client.get(f"/v1/experiments/{job_id}/plots/weights.png"), 409)
    assert body["job_status"] == "queued"


def test_other_sizes_render_on_demand_and_are_cached(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    samples = pytest.importorskip("tests.core.result_samples")
    # A job whose worker stored no PNGs: every plot and size renders on demand.
    job = finished_job(plots={}, result_json=dumps_result(samples.make_result()))
    url = f"/v1/experiments/{job.id}/plots/gradients.png"
    small = {"width": 400, "height": 300, "dpi": 80}

    first = client.get(url, params=small)
    assert first.status_code == 200, first.text
    assert png_size(first.content) == (400, 300)
    again = client.get(url, params=small, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    default = client.get(url)
    assert png_size(default.content) == (PlotSize.WIDTH, PlotSize.HEIGHT)


def test_a_plot_the_result_has_no_numbers_for_is_404(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    job = finished_job(plots={"weights": b"w", "gradients": b"g"})
    body = problem(client.get(f"/v1/experiments/{job.id}/plots/boundary.png"), 404)
    assert body["type"].endswith("plot-unavailable")


def test_a_plot_the_worker_failed_to_draw_is_listed_and_drawn_on_demand(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    samples = pytest.importorskip("tests.core.result_samples")
    result = samples.make_result()
    # The worker drew the weights only: every other plot failed when the job ended.
    job = finished_job(plots={"weights": b"\x89PNG-weights"}, result_json=dumps_result(result))
    url = f"/v1/experiments/{job.id}/plots/gradients.png"

    items = client.get(f"/v1/experiments/{job.id}/plots").json()["items"]
    drawn = client.get(url)
    again = client.get(url)

    assert [item["name"] for item in items] == available_plots(result)
    assert drawn.status_code == 200, drawn.text
    assert png_size(drawn.content) == (PlotSize.WIDTH, PlotSize.HEIGHT)
    assert (again.content, again.headers["etag"]) == (drawn.content, drawn.headers["etag"])
    assert client.get(url, headers={"If-None-Match": drawn.headers["etag"]}).status_code == 304


def test_a_plot_the_result_has_no_numbers_for_is_not_listed(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    samples = pytest.importorskip("tests.core.result_samples")
    result = samples.make_result(n_features=3)  # no decision surface past 2-D data
    job = finished_job(plots={}, result_json=dumps_result(result))

    items = client.get(f"/v1/experiments/{job.id}/plots").json()["items"]
    body = problem(client.get(f"/v1/experiments/{job.id}/plots/boundary.png"), 404)

    assert "boundary" not in [item["name"] for item in items]
    assert len(items) == len(available_plots(result)) > 0
    assert body["type"].endswith("plot-unavailable")


def test_past_the_jobs_plot_cache_a_render_keeps_its_etag_and_answers_304(
    client: httpx.Client, finished_job: FinishedJob, redis_client: redis.Redis, namespace: str
) -> None:
    samples = pytest.importorskip("tests.core.result_samples")
    job = finished_job(plots={}, result_json=dumps_result(samples.make_result()))
    plots_key = Keys(namespace).job(job.id).plots
    # Sizes other clients asked for fill the job's cache.
    filler = {f"weights@{160 + index}x120@50": b"png" for index in range(MAX_CACHED_PLOTS)}
    redis_client.hset(plots_key, mapping={**filler, **{f"{f}#etag": '"x"' for f in filler}})
    url = f"/v1/experiments/{job.id}/plots/gradients.png"
    small = {"width": 400, "height": 300, "dpi": 80}

    first = client.get(url, params=small)
    second = client.get(url, params=small)
    cached = client.get(url, params=small, headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == second.status_code == 200, first.text
    assert not redis_client.hexists(plots_key, plot_field("gradients", (400, 300, 80)))
    assert (second.content, second.headers["etag"]) == (first.content, first.headers["etag"])
    assert cached.status_code == 304 and cached.headers["etag"] == first.headers["etag"]
    assert "immutable" in cached.headers["cache-control"]
    assert client.get(url, params=small, headers={"If-None-Match": '"stale"'}).status_code == 200
