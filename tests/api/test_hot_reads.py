"""The hot read path answers exactly what the routes would, and passes on the rest."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from redis.exceptions import BusyLoadingError, MasterDownError, ResponseError

from api.access import Access
from api.deps import Services
from api.hot_reads import HotReads
from api.rendering import PlotRenderer
from api.services.streams import Streams
from core.plotting.kinds import PlotSize
from core.settings import Settings
from core.store.multiplex import MultiplexedRedis
from core.store.stores import AsyncJobStore, AsyncStudyStore
from tests.api.conftest import UNTRAINED, FinishedJob

pytestmark = pytest.mark.anyio

ORIGIN = "https://notebook.example"
SAME_HEADERS = ("content-type", "etag", "cache-control", "cross-origin-resource-policy")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_record_is_the_routes_record(client: httpx.Client, finished_job: FinishedJob) -> None:
    job = finished_job()
    url = f"/v1/experiments/{job.id}"

    hot = client.get(url, headers={"Origin": ORIGIN})
    routed = client.get(url, params={"via": "route"}, headers={"Origin": ORIGIN})

    assert hot.status_code == routed.status_code == 200
    assert hot.json() == routed.json()
    for name in ("content-type", "access-control-allow-origin"):
        assert hot.headers[name] == routed.headers[name]


def test_png_is_the_routes_png(client: httpx.Client, finished_job: FinishedJob) -> None:
    job = finished_job(plots={"weights": b"\x89PNG-weights"})
    url = f"/v1/experiments/{job.id}/plots/weights.png"
    default = {"width": PlotSize.WIDTH, "height": PlotSize.HEIGHT, "dpi": PlotSize.DPI}

    hot = client.get(url, headers={"Origin": ORIGIN})
    routed = client.get(url, params=default, headers={"Origin": ORIGIN})

    assert hot.content == routed.content == b"\x89PNG-weights"
    for name in (*SAME_HEADERS, "access-control-allow-origin"):
        assert hot.headers[name] == routed.headers[name], name
    etag = hot.headers["etag"]
    hot_304 = client.get(url, headers={"If-None-Match": etag})
    routed_304 = client.get(url, params=default, headers={"If-None-Match": etag})
    assert hot_304.status_code == routed_304.status_code == 304
    assert hot_304.headers["etag"] == routed_304.headers["etag"]


class Downstream:
    """Stands for the FastAPI app: notes what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def hot(settings: Settings) -> Any:
    store = AsyncJobStore.from_settings(settings)
    downstream = Downstream()
    studies = AsyncStudyStore.sharing(store)
    access = Access.from_settings(settings)
    streams = Streams.from_settings(settings, store)
    services = Services(settings, store, studies, PlotRenderer(), access, streams)
    middleware = HotReads(downstream)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = SimpleNamespace(state=SimpleNamespace(services=services))
        await middleware(scope, receive, send)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client, downstream
    await store.close()


async def test_found_records_and_pngs_never_reach_the_routes(
    hot: Any, finished_job: FinishedJob
) -> None:
    client, downstream = hot
    job = finished_job(plots={"weights": b"png"})

    assert (await client.get(f"/v1/experiments/{job.id}")).status_code == 200
    assert (await client.get(f"/v1/experiments/{job.id}/plots/weights.png")).status_code == 200
    assert downstream.paths == []


@pytest.mark.parametrize(
    "path",
    [
        "/v1/experiments/01ARZ3NDEKTSV4RRFFQ69G5FAV",  # unknown
        "/v1/experiments/not-an-id",
        "/v1/experiments/{id}/plots/gradients.png",  # not stored
        "/v1/experiments/{id}/plots/weights.png?width=300",  # another size
        "/v1/experiments/{id}/result",
        "/v1/experiments",
    ],
)
async def test_everything_else_goes_to_the_routes(
    hot: Any, finished_job: FinishedJob, path: str
) -> None:
    client, downstream = hot
    job = finished_job(plots={"weights": b"png"})

    response = await client.get(path.format(id=job.id))

    assert response.status_code == 418 and len(downstream.paths) == 1


async def test_other_methods_go_to_the_routes(hot: Any, finished_job: FinishedJob) -> None:
    client, downstream = hot
    job = finished_job()
    await client.delete(f"/v1/experiments/{job.id}")
    await client.post("/v1/experiments", json=UNTRAINED)
    assert len(downstream.paths) == 2


async def test_an_etag_for_a_plot_not_stored_goes_to_the_routes(
    hot: Any, finished_job: FinishedJob
) -> None:
    client, downstream = hot
    job = finished_job(plots={})  # the worker drew nothing: the route renders, or knows the tag

    response = await client.get(
        f"/v1/experiments/{job.id}/plots/weights.png", headers={"If-None-Match": '"r0123"'}
    )

    assert response.status_code == 418 and len(downstream.paths) == 1


@pytest.mark.parametrize(
    ("error", "answered_here"),
    [
        (BusyLoadingError("LOADING Redis is loading the dataset in memory"), True),
        (ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL"), True),
        (MasterDownError("MASTERDOWN Link with MASTER is down"), True),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    ],
)
async def test_a_redis_that_cannot_serve_is_a_503_here_and_other_errors_go_on(
    hot: Any,
    finished_job: FinishedJob,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    answered_here: bool,
) -> None:
    client, downstream = hot
    job = finished_job()

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error  # what the multiplexed connection raises for that reply

    monkeypatch.setattr(MultiplexedRedis, "execute", refuse)
    monkeypatch.setattr(MultiplexedRedis, "execute_many", refuse)

    response = await client.get(f"/v1/experiments/{job.id}")

    if answered_here:
        assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
        assert response.json()["type"] == "urn:gradwatch:problem:store-unavailable"
        assert downstream.paths == []
    else:
        assert response.status_code == 418 and len(downstream.paths) == 1
