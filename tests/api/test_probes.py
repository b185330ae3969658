"""Probes and metrics need no key, and show hosts only to whom may see them.

A Kubernetes probe cannot send an API key: /healthz and /readyz answer without one
in either mode, /readyz counting live workers for anyone and naming their hosts
only in open mode or to a request with a valid key. /metrics is open unless a
metrics token is set, and then only that token (not an API key) opens it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError

from api.main import create_app
from core.access.api_keys import key_entry, new_api_key
from core.experiment.spec import Device
from core.settings import Settings
from core.store.stores import JobStore
from tests.api.conftest import problem
from tests.conftest import KeysServer, free_port

HOST = "probe-test@secret-node-7"
METRICS_TOKEN = "scrape-me-0123456789abcdef"


@pytest.fixture
def live_worker(store: JobStore, settings: Settings) -> Iterator[str]:
    """A worker beating on the session's CPU queue (its heartbeat only); the queue."""
    queue = settings.queue_for(Device.CPU)
    store.record_heartbeat(queue=queue, hostname=HOST)
    yield queue
    store.forget_worker(queue=queue, hostname=HOST)


def test_readyz_counts_workers_for_anyone_and_names_them_only_with_a_key(
    keys_server: KeysServer, live_worker: str
) -> None:
    anybody = httpx.get(f"{keys_server.url}/readyz")
    wrong_key = httpx.get(
        f"{keys_server.url}/readyz", headers={"Authorization": "Bearer gw_not-a-key-it-knows"}
    )
    with keys_server.client_of("bob") as client:
        keyed = client.get("/readyz")

    for response in (anybody, wrong_key):
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready" and body["auth"] == "keys"
        assert body["live_workers"][live_worker] >= 1
        assert "workers" not in body and HOST not in response.text
    assert keyed.status_code == 200
    assert HOST in keyed.json()["workers"][live_worker]
    assert keyed.json()["live_workers"][live_worker] >= 1


def test_readyz_names_workers_to_anyone_in_open_mode(
    client: httpx.Client, live_worker: str
) -> None:
    body = client.get("/readyz").json()

    assert body["auth"] == "open"
    assert HOST in body["workers"][live_worker]
    assert body["live_workers"][live_worker] == len(body["workers"][live_worker])


def test_metrics_are_open_without_a_metrics_token_in_keys_mode(keys_server: KeysServer) -> None:
    response = httpx.get(f"{keys_server.url}/metrics")

    assert response.status_code == 200
    assert "gradwatch_jobs" in response.text and HOST not in response.text


def in_keys_mode(settings: Settings, **extra: object) -> tuple[Settings, str]:
    """`settings` with one API key and a share secret, and `extra`; and the key."""
    key = new_api_key()
    values = settings.model_dump()
    values.update(api_keys=(key_entry(key, "alice"),), share_secret="s" * 32, **extra)
    return Settings.model_validate(values), key


def get_all(settings: Settings, requests: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    """GET each (path, headers) from the app for `settings`, started as a server starts it."""
    app = create_app(settings)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://api") as client,
        ):
            return [await client.get(path, headers=headers) for path, headers in requests]

    return asyncio.run(run())


def test_a_metrics_token_is_needed_once_set_and_an_api_key_is_not_it(settings: Settings) -> None:
    guarded, key = in_keys_mode(settings, metrics_token=METRICS_TOKEN)

    missing, wrong, api_key, scraped, ready, alive = get_all(
        guarded,
        [
            ("/metrics", {}),
            ("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}x"}),
            ("/metrics", {"Authorization": f"Bearer {key}"}),
            ("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}),
            ("/readyz", {}),
            ("/healthz", {}),
        ],
    )

    for refused in (missing, wrong, api_key):
        problem(refused, 401)
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert scraped.status_code == 200 and "gradwatch_jobs" in scraped.text
    assert ready.status_code == 200 and alive.status_code == 200


def test_a_short_metrics_token_is_refused(settings: Settings) -> None:
    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(namespace=settings.namespace, metrics_token="short")


def test_readyz_without_redis_is_a_503_with_retry_after(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})

    (ready,) = get_all(down, [("/readyz", {})])

    assert ready.status_code == 503 and int(ready.headers["retry-after"]) > 0
    assert ready.json()["redis"] is False and ready.json()["live_workers"] == {}
