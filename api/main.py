"""The gradwatch HTTP API: `uvicorn api.main:app --http api.head_deadline:HeadDeadline`.

Routes live under /v1, one module per resource (api/routes); probes and
metrics at the root; OpenAPI at /docs. The app talks to Redis through the
async job store, where a new job waits on its queue's dispatcher until a worker
claims it: it never imports the worker or TensorFlow, so it starts in a second
and stays small.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from api.access import Access
from api.deps import Services, security_in_force
from api.docs_pages import install_docs_pages
from api.errors import UnexpectedErrors, install_error_handlers
from api.head import HeadAsGet
from api.hot_reads import HotReads
from api.limits import BodySizeLimit
from api.openapi import install_contract
from api.rendering import PlotRenderer
from api.routes import (
    datasets,
    events,
    experiments,
    following,
    health,
    plots,
    presets,
    studies,
    verdicts,
)
from api.services.streams import Streams
from api.ui import install_ui
from core.settings import Settings, get_settings
from core.store.stores import AsyncJobStore, AsyncStudyStore

API_PREFIX = "/v1"
# A spec is a few kilobytes at most; refuse anything far larger before parsing it.
MAX_BODY_BYTES = 64 * 1024

DESCRIPTION = """
Train small Keras networks while capturing every layer's weights, gradients and
activations, and see the vanishing-gradient problem.

`POST /v1/experiments` with a spec (`{}` is the tutorial) returns 202 and the job;
follow it with `GET /v1/experiments/{id}` or `/events` (Server-Sent Events), then
fetch `/result` and the PNGs under `/plots`. Errors are `application/problem+json`.
Bring your own data: `POST /v1/datasets` a CSV or an NPZ.
"""


def operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for `settings` (default: read from the environment)."""
    settings = settings or get_settings()
    # Here, not at the first request: unsafe settings stop the API from starting at all.
    access = Access.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        access.log_mode()
        store = AsyncJobStore.from_settings(settings)
        studies = AsyncStudyStore.sharing(store)
        streams = Streams.from_settings(settings, store)
        app.state.services = Services(settings, store, studies, PlotRenderer(), access, streams)
        streams.hub.start()
        # Everything imported so far (FastAPI, pydantic, matplotlib) lives as long as the
        # process: moving it out of the collector's sight keeps full collections, which
        # otherwise walk it all, from stalling requests for tens of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await streams.hub.close()
            await store.close()

    app = FastAPI(
        title="gradwatch",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # One schema per model for what clients send and are shown: one class in a
        # generated client, not an -Input and an -Output twin.
        separate_input_output_schemas=False,
        # Served by api.docs_pages, from the package's own assets rather than a CDN.
        docs_url=None,
        redoc_url=None,
        # Operation ids are the routes' names (`create_experiment`, `read_plot`): what a
        # generated client calls its functions.
        generate_unique_id_function=operation_id,
    )
    install_contract(app, security_in_force=security_in_force(access))
    install_error_handlers(app)
    # Innermost first: CORS wraps everything, the hot reads and unexpected 500s included.
    app.add_middleware(HotReads)
    # An upload has a cap of its own, in megabytes (Settings.dataset_max_megabytes).
    caps = {f"{API_PREFIX}/datasets": settings.dataset_max_bytes}
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_BODY_BYTES,
        caps=caps,
        idle_seconds=settings.body_idle_seconds,
        min_bytes_per_second=settings.body_min_bytes_per_second,
        grace_seconds=settings.body_grace_seconds,
    )
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        CORSMiddleware,
        # With API keys, none unless configured: see Settings.cors_origins.
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "HEAD", "POST", "DELETE"],
        allow_headers=[
            "Content-Type",
            "Idempotency-Key",
            "Last-Event-ID",
            "If-None-Match",
            "Authorization",
            "X-API-Key",
        ],
        expose_headers=["ETag", "Location", "Idempotent-Replayed", "Retry-After"],
        max_age=3600,
    )
    for module in (experiments, plots, events, following, presets, studies, verdicts, datasets):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)
    install_ui(app)
    install_docs_pages(app)
    return app


app = create_app()
