"""The web UI at `/`: pages for people, served by the API itself.

Each page is a server-rendered Jinja2 template (the shell: navigation, forms,
the presets) and native JavaScript modules: static/gradwatch.js starts the page
and imports the rest from static/js, one concern a module, with plain relative
imports and no build step. They read the same /v1 API any client reads: the
lists, the records, live progress from the event streams (read with `fetch()`,
so an API key travels as a header, never in a URL), results, and plots. Charts
are drawn with uPlot, vendored under static/vendor with its licence: nothing is
fetched from elsewhere, so the pages work offline. Every URL a page uses starts
from the request's root_path, so the UI works behind a proxy that serves the
API under a path prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from api.deps import SettingsDep
from api.services.datasets import NAME_LENGTH
from api.services.presets import PRESET_LIST

HERE = Path(__file__).parent
STATIC_PATH = "/ui/static"
# The pages load scripts, styles and data from this service alone: a page that tried
# a CDN would be blank offline, and this makes such a slip visible in any browser.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
MAX_COMPARED = 6

templates = Jinja2Templates(directory=HERE / "templates")
# The modules the page's script imports: each page names them for preloading, so the
# browser fetches them in one round instead of one round per level of imports.
MODULES = tuple(
    path.relative_to(HERE / "static").as_posix()
    for path in sorted((HERE / "static/js").rglob("*.js"))
)
router = APIRouter(include_in_schema=False)

PageId = Annotated[str, PathParam(max_length=32, pattern=r"^[0-9A-Za-z]+$")]


def page(request: Request, name: str, **context: Any) -> Response:
    """The template `name`.html for this request, with what every page needs."""
    root = request.scope.get("root_path", "").rstrip("/")
    response = templates.TemplateResponse(
        request,
        f"{name}.html",
        {"root": root, "static": root + STATIC_PATH, "modules": MODULES, "page": name, **context},
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("/")
async def home(request: Request) -> Response:
    """Experiments and studies, newest first, with their status."""
    return page(request, "home")


@router.get("/new")
async def new(request: Request) -> Response:
    """Start an experiment or a study: from a preset, a few fields, or the JSON spec."""
    return page(request, "new", presets=PRESET_LIST)


@router.get("/datasets")
async def datasets(request: Request, settings: SettingsDep) -> Response:
    """Upload a CSV or an NPZ, list the owner's datasets, delete one, train on one."""
    return page(request, "datasets", max_bytes=settings.dataset_max_bytes, name_length=NAME_LENGTH)


@router.get("/experiments/{job_id}")
async def experiment(request: Request, job_id: PageId) -> Response:
    """One experiment: progress, verdicts with evidence, prescriptions, plots, charts."""
    return page(request, "experiment", id=job_id)


@router.get("/studies/{study_id}")
async def study(request: Request, study_id: PageId) -> Response:
    """One study: progress, the summary table, its plots, its experiments."""
    return page(request, "study", id=study_id)


@router.get("/compare")
async def compare(
    request: Request,
    ids: Annotated[
        str, Query(max_length=27 * MAX_COMPARED, pattern=r"^[0-9A-Za-z]+(,[0-9A-Za-z]+)*$")
    ] = "",
) -> Response:
    """Two or more experiments side by side."""
    chosen = [some_id for some_id in ids.split(",") if some_id][:MAX_COMPARED]
    return page(request, "compare", ids=chosen)


def install_ui(app: FastAPI) -> None:
    """Serve the pages and their static files on `app`."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="ui-static")
