"""Renders an owner may have drawn a minute, over real HTTP: 429 with Retry-After past
them, for that owner alone; what is cached answers as before."""

from __future__ import annotations

import httpx
import pytest

from core.experiment.result import dumps_result
from core.store.stores import JobStore
from tests.api.test_access import finished_job_of
from tests.conftest import KeysServer, keys_env, serve_api

PER_MINUTE = 2


def finished_with_result(store: JobStore, owner: str) -> str:
    samples = pytest.importorskip("tests.core.result_samples")
    result = dumps_result(samples.make_result())
    return finished_job_of(store, owner, result_json=result, weights=False).id


def test_an_owner_past_its_renders_a_minute_is_429_another_owner_is_not(
    service_env: dict[str, str], store: JobStore
) -> None:
    env, keys = keys_env(service_env, renders_per_minute=PER_MINUTE)
    with serve_api(env) as server:
        api = KeysServer(server.url, server.process, keys, env["GRADWATCH_SHARE_SECRET"])
        alices, bobs = finished_with_result(store, "alice"), finished_with_result(store, "bob")
        with api.client_of("alice") as alice, api.client_of("bob") as bob:

            def draw(client: httpx.Client, job_id: str, width: int) -> httpx.Response:
                url = f"/v1/experiments/{job_id}/plots/weights.png"
                return client.get(url, params={"width": width, "height": 200, "dpi": 50})

            drawn = [draw(alice, alices, 300 + step).status_code for step in range(PER_MINUTE)]
            refused = draw(alice, alices, 400)
            again = draw(alice, alices, 300)  # cached: no render

            assert drawn == [200] * PER_MINUTE
            assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
            assert refused.json()["type"].endswith("too-many-renders")
            assert again.status_code == 200
            assert draw(bob, bobs, 400).status_code == 200
