"""HEAD wherever GET, and ETags with 304 on a finished job's result and arrays."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import FinishedJob, problem

ORIGIN = "https://elsewhere.example"
RESULT = b'{"version":2,"epochs_run":3}'


@pytest.fixture
def job_paths(finished_job: FinishedJob) -> dict[str, str]:
    """A finished job's GET routes, by what they serve."""
    job = finished_job(plots={"weights": b"\x89PNG-w"}, result_json=RESULT.decode(), arrays=b"npz")
    base = f"/v1/experiments/{job.id}"
    return {
        "record": base,
        "result": f"{base}/result",
        "arrays": f"{base}/arrays.npz",
        "plot": f"{base}/plots/weights.png",
        "plots": f"{base}/plots",
        "events": f"{base}/events",
    }


@pytest.mark.parametrize("what", ["record", "result", "arrays", "plot", "plots", "events"])
def test_head_answers_as_get_without_the_body(
    client: httpx.Client, job_paths: dict[str, str], what: str
) -> None:
    path = job_paths[what]
    with client.stream("GET", path) as got:
        assert got.status_code == 200
        get_headers = got.headers
    head = client.head(path, headers={"Origin": ORIGIN})

    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "cache-control"):
        assert head.headers.get(name) == get_headers.get(name), name
    assert head.headers["access-control-allow-origin"] in ("*", ORIGIN)


def test_head_of_an_unknown_job_is_its_404_without_the_body(client: httpx.Client) -> None:
    head = client.head("/v1/experiments/01JD8X3Q7R5M2N4P6T8V0W2Y4Z/result")
    assert head.status_code == 404
    assert head.headers["content-type"] == "application/problem+json"
    assert head.content == b""


def test_head_where_there_is_no_get_is_a_405(client: httpx.Client) -> None:
    path = "/v1/experiments/01JD8X3Q7R5M2N4P6T8V0W2Y4Z/cancel"
    problem(client.get(path), 405)
    head = client.head(path)
    assert head.status_code == 405 and head.content == b""


@pytest.mark.parametrize("what", ["result", "arrays"])
def test_a_stored_file_has_an_etag_and_answers_304(
    client: httpx.Client, job_paths: dict[str, str], what: str
) -> None:
    first = client.get(job_paths[what])
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"].endswith("immutable")

    again = client.get(job_paths[what], headers={"If-None-Match": f'"other", W/{etag}'})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    changed = client.get(job_paths[what], headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200 and changed.content == first.content


def test_the_result_is_served_as_stored(client: httpx.Client, job_paths: dict[str, str]) -> None:
    response = client.get(job_paths["result"])
    assert response.content == RESULT
    assert response.headers["content-type"] == "application/json"
