"""The two hottest reads answered straight from the store, beneath FastAPI's routing.

`GET /v1/experiments/{id}` is what clients poll and `GET .../plots/{name}.png` is
what pages embed. Through FastAPI's routing, dependency resolution and parameter
validation one costs about 0.33 ms of CPU; answered here, about 0.12 ms
(benchmarks/service_http.py), which is what lets one process serve thousands a
second with a low tail.

Only the plain success is answered here: a stored record, or a stored default-size
PNG (200, or 304 for a matching If-None-Match), for a GET without a query string,
and Redis being unreachable or refusing to serve for now (LOADING, BUSY, ...: the
same 503 the routes give, without asking again).
Anything else (an unknown id, a size or a plot to render, a PNG the store did not
keep, any other route) goes on to the FastAPI routes, which remain the one place
that validates, documents and reports errors. Both build their responses with
api.responses.
With API keys, only a request whose key owns the job is answered here; one
without a valid key, or for another owner's job, goes on to the routes too.
"""

from __future__ import annotations

import asyncio
import re

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import Services
from api.errors import problem_response, store_unavailable
from api.responses import etag_matches, not_modified, png_response, record_response
from core.plotting.catalog import EXPERIMENT_PLOTS
from core.store.errors import is_store_unavailable
from core.store.keys import plot_field

_ID = r"[0-9A-HJKMNP-TV-Z]{26}"
_RECORD = re.compile(rf"^/v1/experiments/({_ID})$")
_PLOT = re.compile(rf"^/v1/experiments/({_ID})/plots/([a-z_]+)\.png$")
_NAMES = frozenset(EXPERIMENT_PLOTS.names)


class HotReads:
    """ASGI middleware answering stored records and default-size PNGs, or passing on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            try:
                response = await self._answer(scope)
            except Exception as error:
                if is_store_unavailable(error):
                    # Asking again through the route would only wait as long, or be
                    # refused the same way (LOADING, BUSY, ...), once more.
                    response = problem_response(store_unavailable(), scope["path"])
                else:  # the route will say so properly
                    response = None
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope) -> Response | None:
        path: str = scope["path"]
        if not path.startswith("/v1/experiments/"):
            return None
        services: Services = scope["app"].state.services
        headers = _headers(scope)
        access = services.access
        owner = access.owner_for(headers.get(b"authorization"), headers.get(b"x-api-key"))
        if owner is None:
            return None
        if match := _RECORD.match(path):
            record = await services.store.get_owned(match[1], owner=access.reader(owner))
            if record is None:
                return None
            return record_response(record)
        if (match := _PLOT.match(path)) and match[2] in _NAMES:
            if not access.open:
                return await self._owned_plot(services, owner, match[1], match[2], headers)
            return await self._plot(services, match[1], match[2], headers.get(b"if-none-match"))
        return None

    async def _owned_plot(
        self, services: Services, owner: str, job_id: str, name: str, headers: dict[bytes, str]
    ) -> Response | None:
        # Both reads leave on one round trip of the multiplexed connection.
        job_owner, response = await asyncio.gather(
            services.store.owner_of(job_id),
            self._plot(services, job_id, name, headers.get(b"if-none-match")),
        )
        return response if job_owner == owner else None

    @staticmethod
    async def _plot(
        services: Services, job_id: str, name: str, if_none_match: str | None
    ) -> Response | None:
        cache_control = services.access.immutable
        if if_none_match is not None:
            cached = await services.store.get_plot(job_id, field=plot_field(name), body=False)
            if cached.etag is None:  # not stored: the route renders it, or knows its ETag
                return None
            if etag_matches(if_none_match, cached.etag):
                return not_modified(cached.etag, cache_control)
        plot = await services.store.get_plot(job_id, field=plot_field(name))
        if plot.png is None or plot.etag is None:
            return None
        return png_response(plot.png, plot.etag, cache_control)


_WANTED = frozenset({b"authorization", b"x-api-key", b"if-none-match"})


def _headers(scope: Scope) -> dict[bytes, str]:
    """The request headers the hot reads look at."""
    return {key: value.decode("latin-1") for key, value in scope["headers"] if key in _WANTED}
