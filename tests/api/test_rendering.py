"""On-demand renders: bounded, shared per plot, and named before they are drawn."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from api.errors import Problem
from api.main import create_app
from api.rendering import PlotIndex, PlotRenderer, render_etag
from core.experiment.result import dumps_result
from core.settings import Settings
from core.store.keys import Keys
from core.store.plots import MAX_CACHED_PLOTS
from tests.api.conftest import FinishedJob

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set to let the blocked renders finish (always, so no thread outlives the test)."""
    event = threading.Event()
    yield event
    event.set()


def blocked(release: threading.Event, calls: list[str], name: str) -> Callable[[], bytes]:
    def draw() -> bytes:
        calls.append(name)
        assert release.wait(timeout=30)
        return f"png of {name}".encode()

    return draw


async def test_renders_past_the_limit_are_refused_503_and_the_same_plot_waits_for_its_own(
    release: threading.Event,
) -> None:
    renderer = PlotRenderer(concurrency=1, max_pending=2)
    calls: list[str] = []
    first = asyncio.ensure_future(renderer.render("a", blocked(release, calls, "a")))
    second = asyncio.ensure_future(renderer.render("b", blocked(release, calls, "b")))
    await asyncio.sleep(0)  # both have started: one drawing, one waiting for the thread

    with pytest.raises(Problem) as refused:
        await renderer.render("c", blocked(release, calls, "c"))
    joined = asyncio.ensure_future(renderer.render("a", blocked(release, calls, "a again")))
    release.set()

    assert await asyncio.gather(first, second, joined) == [b"png of a", b"png of b", b"png of a"]
    assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) > 0
    assert sorted(calls) == ["a", "b"]  # the refused one never ran, the joined one shared
    assert await renderer.render("c", lambda: b"png of c") == b"png of c"  # room again


def test_a_render_etag_names_one_plot_at_one_size() -> None:
    job = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    tag = render_etag(f"{job}/gradients@400x300@80")

    assert tag == render_etag(f"{job}/gradients@400x300@80")
    assert tag.startswith('"') and tag.endswith('"') and len(tag) > 20
    others = {
        render_etag(f"{job}/gradients@400x300@81"),
        render_etag(f"{job}/weights@400x300@80"),
        render_etag("01ARZ3NDEKTSV4RRFFQ69G5FAW/gradients@400x300@80"),
    }
    assert tag not in others and len(others) == 3


def test_the_plot_index_forgets_the_oldest_jobs() -> None:
    index = PlotIndex(size=2)
    index.remember("a", ("weights",))
    index.remember("b", ())
    assert index.get("a") == ("weights",)  # now the newest
    index.remember("c", ("dataset",))

    assert index.get("b") is None
    assert (index.get("a"), index.get("c")) == (("weights",), ("dataset",))


async def test_a_304_for_a_render_the_store_did_not_keep_draws_nothing(
    settings: Settings,
    finished_job: FinishedJob,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    samples = pytest.importorskip("tests.core.result_samples")
    job = finished_job(plots={}, result_json=dumps_result(samples.make_result()))
    plots_key = Keys(settings.namespace).job(job.id).plots
    filler = {f"weights@{160 + index}x120@50": b"png" for index in range(MAX_CACHED_PLOTS)}
    redis_client.hset(plots_key, mapping={**filler, **{f"{f}#etag": '"x"' for f in filler}})
    url = f"/v1/experiments/{job.id}/plots/gradients.png?width=400&height=300&dpi=80"

    async def ask(headers: dict[str, str]) -> tuple[httpx.Response, list[str]]:
        """GET `url` from a fresh API process (as a server starts it); the renders it ran."""
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            renderer = app.state.services.renderer
            keys: list[str] = []
            render = renderer.render

            async def counted(key: str, draw: Callable[[], bytes]) -> bytes:
                keys.append(key)
                return await render(key, draw)

            monkeypatch.setattr(renderer, "render", counted)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await client.get(url, headers=headers), keys

    drawn, renders = await ask({})
    cached, no_renders = await ask({"If-None-Match": drawn.headers["etag"]})

    assert drawn.status_code == 200 and len(renders) == 1
    assert cached.status_code == 304 and no_renders == []
    assert cached.headers["etag"] == drawn.headers["etag"]
