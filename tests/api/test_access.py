"""Access over real HTTP: API keys, owners, per-owner limits, share links, CORS, the mode."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import Request

from api.links import public_url
from api.main import create_app
from core.access.api_keys import key_entry, new_api_key
from core.access.share_links import PlotGrant, sign_plot
from core.experiment.jobs import Summary, new_job_id
from core.experiment.spec import ExperimentSpec
from core.plotting.kinds import PlotSize
from core.settings import Settings
from core.store.records import JobRecord
from core.store.stores import JobStore
from tests.api.conftest import UNTRAINED, WORKER, problem
from tests.conftest import ROOT, KeysServer, keys_env, serve_api

ORIGIN = "https://notebook.example"
PNG = b"\x89PNG-weights-of-alice"
JOB_ROUTES = [
    ("GET", "/v1/experiments/{id}"),
    ("GET", "/v1/experiments/{id}/result"),
    ("GET", "/v1/experiments/{id}/arrays.npz"),
    ("GET", "/v1/experiments/{id}/plots"),
    ("GET", "/v1/experiments/{id}/plots/weights.png"),
    ("GET", "/v1/experiments/{id}/plots/weights.png?width=300"),
    ("GET", "/v1/experiments/{id}/events"),
    ("POST", "/v1/experiments/{id}/plots/weights/share"),
    ("POST", "/v1/experiments/{id}/cancel"),
    ("DELETE", "/v1/experiments/{id}"),
]


@pytest.fixture
def alice(keys_server: KeysServer) -> Iterator[httpx.Client]:
    with keys_server.client_of("alice") as client:
        yield client


@pytest.fixture
def bob(keys_server: KeysServer) -> Iterator[httpx.Client]:
    with keys_server.client_of("bob") as client:
        yield client


@pytest.fixture
def anybody(keys_server: KeysServer) -> Iterator[httpx.Client]:
    """A client with no key at all."""
    with keys_server.client() as client:
        yield client


def finished_job_of(
    store: JobStore, owner: str, *, result_json: str = '{"version":1}', weights: bool = True
) -> JobRecord:
    """A succeeded job of `owner`, made in the store, with a stored weights PNG (unless
    not `weights`)."""
    spec = ExperimentSpec.model_validate(UNTRAINED)
    job_id = store.create(spec=spec, queue="nowhere", owner=owner).record.id
    store.mark_running(job_id, worker=WORKER, max_deliveries=3)
    store.mark_succeeded(
        job_id,
        summary=Summary(loss=0.5, accuracy=0.75),
        result_json=result_json,
        plots={"weights": PNG} if weights else {},
        arrays=b"npz",
    )
    record = store.get(job_id)
    assert record is not None
    return record


def post(client: httpx.Client, **headers: str) -> httpx.Response:
    return client.post("/v1/experiments", json=UNTRAINED, headers=headers)


# --------------------------------------------------------------------- the mode


def test_readyz_says_which_mode(keys_server: KeysServer, client: httpx.Client) -> None:
    assert httpx.get(f"{keys_server.url}/readyz").json()["auth"] == "keys"
    assert client.get("/readyz").json()["auth"] == "open"


@pytest.mark.anyio
async def test_the_api_says_its_mode_when_it_starts(caplog: pytest.LogCaptureFixture) -> None:
    entry = key_entry(new_api_key(), "alice")
    for settings, said in [
        (Settings(namespace="gwtest-mode"), "auth: OPEN"),
        (Settings(namespace="gwtest-mode", api_keys=(entry,), share_secret="s" * 32), "auth: keys"),
    ]:
        caplog.clear()
        app = create_app(settings)
        with caplog.at_level(logging.INFO, logger="uvicorn.error"):
            async with app.router.lifespan_context(app):
                pass
        assert said in caplog.text


def test_keys_without_a_share_secret_refuse_to_start() -> None:
    env = {**os.environ, "GRADWATCH_API_KEYS": key_entry(new_api_key())}
    env.pop("GRADWATCH_SHARE_SECRET", None)
    done = subprocess.run(
        [sys.executable, "-c", "import api.main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "GRADWATCH_SHARE_SECRET" in done.stderr


# --------------------------------------------------------------------- keys


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/experiments"), *JOB_ROUTES])
@pytest.mark.parametrize("key", [None, "gw_not-a-key-this-service-knows"])
def test_no_valid_key_is_a_401(
    anybody: httpx.Client, method: str, path: str, key: str | None
) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = anybody.request(method, path.format(id=new_job_id()), headers=headers)

    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_every_operation_that_refuses_a_missing_key_declares_its_401(
    anybody: httpx.Client,
) -> None:
    document = anybody.get("/openapi.json").json()
    fresh = new_job_id()
    values = {"job_id": fresh, "study_id": fresh, "name": "loss", "index": 0}
    values["dataset_id"] = "0" * 26
    refused = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            url = path.format(**values)
            if anybody.request(method.upper(), url, json={}).status_code == 401:
                refused.append(path)
                assert "401" in operation["responses"], f"{method.upper()} {path}"
    assert {"/v1/studies/{study_id}/events", "/v1/studies/{study_id}/summary.csv"} <= set(refused)


def test_listing_needs_a_key_but_probes_presets_and_verdicts_do_not(anybody: httpx.Client) -> None:
    problem(anybody.get("/v1/experiments"), 401)
    for path in ("/healthz", "/readyz", "/v1/presets", "/v1/verdicts", "/openapi.json"):
        assert anybody.get(path).status_code == 200, path


def test_a_key_works_as_bearer_or_as_x_api_key(keys_server: KeysServer) -> None:
    with keys_server.client() as client:
        key = keys_server.keys["alice"]
        bearer = post(client, Authorization=f"bearer {key}")
        header = post(client, **{"X-API-Key": key})
        assert bearer.status_code == header.status_code == 202
        job_id = header.json()["id"]
        assert client.get(f"/v1/experiments/{job_id}", headers={"X-API-Key": key}).is_success


def test_the_openapi_documents_both_ways_to_send_a_key(anybody: httpx.Client) -> None:
    schemes = anybody.get("/openapi.json").json()["components"]["securitySchemes"]
    assert {scheme["type"] for scheme in schemes.values()} == {"http", "apiKey"}


# -------------------------------------------------------------------- owners


def unknown_body(client: httpx.Client, method: str, path: str, job_id: str) -> dict[str, Any]:
    """The 404 of an id nobody has, with `job_id` written in for comparison."""
    unknown = new_job_id()
    body = problem(client.request(method, path.format(id=unknown)), 404)
    return {
        key: value.replace(unknown, job_id) if isinstance(value, str) else value
        for key, value in body.items()
    }


@pytest.mark.parametrize(("method", "path"), JOB_ROUTES)
def test_another_owners_job_is_exactly_an_unknown_one(
    alice: httpx.Client, bob: httpx.Client, store: JobStore, method: str, path: str
) -> None:
    job = finished_job_of(store, "alice")

    response = bob.request(method, path.format(id=job.id))

    assert problem(response, 404) == unknown_body(bob, method, path, job.id)
    assert alice.get(f"/v1/experiments/{job.id}").json()["status"] == "succeeded"


def test_keys_of_one_owner_share_its_jobs(keys_server: KeysServer, store: JobStore) -> None:
    job = finished_job_of(store, "alice")
    with keys_server.client_of("alice2") as alice2, keys_server.client_of("carol") as carol:
        assert alice2.get(f"/v1/experiments/{job.id}/result").json() == {"version": 1}
        problem(carol.get(f"/v1/experiments/{job.id}/result"), 404)


def test_an_owner_lists_its_own_jobs_only(alice: httpx.Client, bob: httpx.Client) -> None:
    mine = [post(alice).json()["id"] for _ in range(3)]
    theirs = post(bob).json()["id"]

    listed = [job["id"] for job in alice.get("/v1/experiments?limit=200").json()["items"]]
    assert listed[:3] == mine[::-1] and theirs not in listed
    queued = alice.get("/v1/experiments", params={"status": "queued", "limit": 200}).json()
    assert {job["id"] for job in queued["items"]} >= set(mine)
    assert theirs not in {job["id"] for job in queued["items"]}
    bobs = [job["id"] for job in bob.get("/v1/experiments?limit=200").json()["items"]]
    assert theirs in bobs and not set(mine) & set(bobs)


def test_open_mode_jobs_are_nobodys_in_keys_mode(client: httpx.Client, alice: httpx.Client) -> None:
    anonymous = post(client).json()["id"]

    problem(alice.get(f"/v1/experiments/{anonymous}"), 404)
    assert anonymous not in [job["id"] for job in alice.get("/v1/experiments").json()["items"]]


def test_another_owner_can_neither_cancel_nor_delete(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    job_id = post(alice).json()["id"]

    problem(bob.post(f"/v1/experiments/{job_id}/cancel"), 404)
    problem(bob.delete(f"/v1/experiments/{job_id}"), 404)
    assert alice.get(f"/v1/experiments/{job_id}").json()["status"] == "queued"
    assert alice.delete(f"/v1/experiments/{job_id}").status_code == 204


def test_idempotency_keys_do_not_cross_owners(alice: httpx.Client, bob: httpx.Client) -> None:
    key = f"shared-{new_job_id()}"
    first = post(alice, **{"Idempotency-Key": key}).json()["id"]
    other = post(bob, **{"Idempotency-Key": key})

    assert other.status_code == 202 and other.json()["id"] != first
    assert "idempotent-replayed" not in other.headers


def test_owned_results_and_plots_are_private_to_caches(
    alice: httpx.Client, store: JobStore
) -> None:
    job = finished_job_of(store, "alice")

    png = alice.get(f"/v1/experiments/{job.id}/plots/weights.png")
    assert png.content == PNG and png.headers["cache-control"].startswith("private")
    result = alice.get(f"/v1/experiments/{job.id}/result")
    assert result.headers["cache-control"].startswith("private")
    etag = png.headers["etag"]
    cached = alice.get(
        f"/v1/experiments/{job.id}/plots/weights.png", headers={"If-None-Match": etag}
    )
    assert cached.status_code == 304


# -------------------------------------------------------------------- limits


@pytest.fixture(scope="module")
def limited_server(service_env: dict[str, str], redis_client: Any) -> Iterator[KeysServer]:
    """A keys server allowing 4 submissions a minute and 3 active jobs per owner."""
    env, keys = keys_env(service_env, submissions_per_minute=4, max_active_jobs=3)
    with serve_api(env) as server:
        yield KeysServer(server.url, server.process, keys, env["GRADWATCH_SHARE_SECRET"])


def test_too_many_active_jobs_is_a_429_naming_the_limit(limited_server: KeysServer) -> None:
    # carol's key has no owner name: its owner is new to this Redis, whatever ran before.
    with limited_server.client_of("carol") as carol:
        jobs = [post(carol).json()["id"] for _ in range(3)]

        refused = post(carol)
        body = problem(refused, 429)
        assert body["limit"] == "max_active_jobs" and body["limit_value"] == 3
        assert int(refused.headers["retry-after"]) >= 1

        carol.post(f"/v1/experiments/{jobs[0]}/cancel")
        assert post(carol).status_code == 202


def test_too_many_submissions_a_minute_is_a_429_with_retry_after(
    limited_server: KeysServer,
) -> None:
    with limited_server.client_of("dave") as dave:
        for _ in range(4):
            job_id = post(dave).json()["id"]
            dave.post(f"/v1/experiments/{job_id}/cancel")  # stays under the active limit

        refused = post(dave)
        body = problem(refused, 429)
        assert body["limit"] == "submissions_per_minute" and body["limit_value"] == 4
        assert 1 <= int(refused.headers["retry-after"]) <= 60


# ---------------------------------------------------------------- share links


def share(client: httpx.Client, job_id: str, **params: int) -> dict[str, Any]:
    response = client.post(f"/v1/experiments/{job_id}/plots/weights/share", params=params)
    assert response.status_code == 200, response.text
    link: dict[str, Any] = response.json()
    return link


def test_a_share_link_shows_the_plot_without_a_key(
    alice: httpx.Client, anybody: httpx.Client, store: JobStore
) -> None:
    job = finished_job_of(store, "alice")
    before = time.time()

    link = share(alice, job.id, expires_in=3600)

    assert before + 3600 - 1 <= link["expires"] <= time.time() + 3600 + 1
    query = parse_qs(urlsplit(link["url"]).query)
    assert set(query) == {"expires", "sig"}
    response = anybody.get(link["url"], headers={"Origin": ORIGIN})
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["access-control-allow-origin"] == "*"
    cache = response.headers["cache-control"]
    max_age = int(cache.split("max-age=")[1].split(",")[0])
    assert cache.startswith("public") and 3500 <= max_age <= 3600  # no longer than the link
    etag = response.headers["etag"]
    assert anybody.get(link["url"], headers={"If-None-Match": etag}).status_code == 304


def test_a_tampered_or_expired_link_is_a_403(
    keys_server: KeysServer, alice: httpx.Client, anybody: httpx.Client, store: JobStore
) -> None:
    job = finished_job_of(store, "alice")
    other = finished_job_of(store, "alice")
    url = share(alice, job.id)["url"]
    query = parse_qs(urlsplit(url).query)
    expires, sig = query["expires"][0], query["sig"][0]
    base = f"/v1/experiments/{job.id}/plots/weights.png"

    for bad in (
        f"{base}?expires={expires}&sig={sig[:-2]}AA",
        f"{base}?expires={int(expires) + 1}&sig={sig}",
        f"{base}?expires={expires}&sig={sig}&width=300",  # another size
        f"/v1/experiments/{other.id}/plots/weights.png?expires={expires}&sig={sig}",
        f"/v1/experiments/{job.id}/plots/gradients.png?expires={expires}&sig={sig}",
        f"{base}?sig={sig}",
        f"{base}?expires={expires}",
    ):
        assert problem(anybody.get(bad), 403)["type"].endswith("invalid-link"), bad

    past = int(time.time()) - 10
    size = (PlotSize.WIDTH, PlotSize.HEIGHT, PlotSize.DPI)
    grant = PlotGrant("experiment", job.id, "weights", size, past)
    signed = sign_plot(keys_server.share_secret.encode(), grant)
    expired = anybody.get(f"{base}?expires={past}&sig={signed}")
    assert problem(expired, 403)["type"].endswith("link-expired")


def test_a_link_at_another_size_covers_that_size(alice: httpx.Client, store: JobStore) -> None:
    job = finished_job_of(store, "alice")
    link = share(alice, job.id, width=300, dpi=80, expires_in=60)

    query = parse_qs(urlsplit(link["url"]).query)
    assert query["width"] == ["300"] and query["dpi"] == ["80"] and "height" not in query


def test_only_the_owner_can_share_and_within_bounds(
    alice: httpx.Client, bob: httpx.Client, store: JobStore
) -> None:
    job = finished_job_of(store, "alice")

    problem(bob.post(f"/v1/experiments/{job.id}/plots/weights/share"), 404)
    problem(alice.post(f"/v1/experiments/{job.id}/plots/nothing/share"), 404)
    for expires_in in (0, 59, 90 * 24 * 3600 + 1, -5):
        body = problem(
            alice.post(
                f"/v1/experiments/{job.id}/plots/weights/share", params={"expires_in": expires_in}
            ),
            422,
        )
        assert body["errors"][0]["field"] == "expires_in"


def test_share_links_work_in_open_mode_too(client: httpx.Client, store: JobStore) -> None:
    job = finished_job_of(store, "anonymous")
    link = share(client, job.id)
    assert client.get(link["url"]).content == PNG


def test_sharing_an_unknown_records_plot_is_a_404_in_open_mode_too(client: httpx.Client) -> None:
    for path in ("experiments/{id}/plots/weights", "studies/{id}/plots/curves"):
        share_path = f"/v1/{path.format(id=new_job_id())}/share"
        assert problem(client.post(share_path), 404)["type"].endswith("not-found"), share_path


def test_a_forged_host_never_makes_a_link(client: httpx.Client, store: JobStore) -> None:
    job = finished_job_of(store, "anonymous")
    headers = {"Host": "evil.example"}

    link = client.post(f"/v1/experiments/{job.id}/plots/weights/share", headers=headers).json()
    [listed] = client.get(f"/v1/experiments/{job.id}/plots", headers=headers).json()["items"]

    for url in (link["url"], listed["url"]):
        assert url.startswith(f"/v1/experiments/{job.id}/plots/weights.png"), url
    assert client.get(link["url"]).content == PNG


@pytest.mark.parametrize(
    ("configured", "host", "expected"),
    [
        ({"public_url": "https://gw.example/api"}, "evil.example", "https://gw.example/api/v1/"),
        ({"public_hosts": ("gw.example",)}, "gw.example", "http://gw.example/v1/"),
        ({"public_hosts": ("gw.example",)}, "evil.example", "/v1/"),
    ],
)
def test_links_are_absolute_only_from_a_configured_url_or_a_listed_host(
    settings: Settings, configured: dict[str, Any], host: str, expected: str
) -> None:
    own = settings.model_copy(update=configured)
    app = create_app(own)
    scope = {
        "type": "http",
        "app": app,
        "scheme": "http",
        "root_path": "",
        "headers": [(b"host", host.encode())],
    }

    url = public_url(Request(scope), own, "read_plot", job_id=new_job_id(), name="weights")

    assert url.startswith(expected) and url.endswith("/plots/weights.png")


STUDY: dict[str, Any] = {  # left queued: no test worker consumes the gpu queue
    "base": {"seed": 1, "device": "gpu", "training": {"epochs": 2}},
    "axes": {"model.activation": ["tanh", "relu"]},
}


def test_study_plots_have_share_links_too(
    alice: httpx.Client, bob: httpx.Client, anybody: httpx.Client
) -> None:
    study = alice.post("/v1/studies", json=STUDY).json()["id"]
    share_path = f"/v1/studies/{study}/plots/curves/share"

    problem(bob.post(share_path), 404)
    problem(anybody.get(f"/v1/studies/{study}/plots/curves.png"), 401)
    link = alice.post(share_path, params={"width": 400}).json()

    # The link lets anyone in: the study is not finished, so that is what it hears.
    assert problem(anybody.get(link["url"]), 409)["type"].endswith("not-finished")
    query = parse_qs(urlsplit(link["url"]).query)
    assert query["width"] == ["400"]
    signed = f"expires={query['expires'][0]}&sig={query['sig'][0]}&width=400"
    problem(anybody.get(f"/v1/studies/{study}/plots/depth.png?{signed}"), 403)
    assert alice.delete(f"/v1/studies/{study}").status_code == 204


# ----------------------------------------------------------------------- CORS


def test_keys_mode_allows_no_cross_origin_calls_by_default(anybody: httpx.Client) -> None:
    preflight = anybody.options(
        "/v1/experiments",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    listing = anybody.get("/v1/presets", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in listing.headers


def test_configured_origins_may_call_with_a_key(
    service_env: dict[str, str], redis_client: Any
) -> None:
    env, _ = keys_env(service_env)
    env["GRADWATCH_CORS_ORIGINS"] = f'["{ORIGIN}"]'
    with serve_api(env) as server, server.client() as client:
        preflight = client.options(
            "/v1/experiments",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        other = client.options(
            "/v1/experiments",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers


def test_open_mode_lets_any_origin_call(client: httpx.Client) -> None:
    preflight = client.options(
        "/v1/experiments",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type",
        },
    )
    assert preflight.headers["access-control-allow-origin"] in ("*", ORIGIN)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
