"""/docs (Swagger UI) and /redoc, working offline: their scripts and styles are the
service's own, under /docs/assets (api/static/docs, with their licences), never a CDN.

URLs are relative to the app's root path, so the pages work behind a path prefix.
Each page is served with a Content-Security-Policy that keeps it to the service: ReDoc's
side menu shows Redocly's logo from cdn.redoc.ly, which the policy blocks (the image
hides itself), so opening /redoc tells no one else.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "docs"
ASSETS_PATH = "/docs/assets"


def swagger_ui(title: str, openapi: str, assets: str) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=openapi,
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        # Swagger UI would otherwise show a badge loaded from validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


def redoc(title: str, openapi: str, assets: str) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=openapi,
        title=f"{title} - ReDoc",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )


def keep_to_the_service(response: HTMLResponse) -> HTMLResponse:
    """`response` with a policy allowing only the service's own files, the page's inline
    script (Swagger UI's start, by its hash) and inline styles (ReDoc writes its own)."""
    inline = re.findall(rb"<script>(.*?)</script>", response.body, re.S)
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in inline
    )
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; base-uri 'self'; form-action 'self'"
    )
    return response


PAGES: dict[str, Callable[[str, str, str], HTMLResponse]] = {"/docs": swagger_ui, "/redoc": redoc}


def install_docs_pages(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (create `app` with docs_url=redoc_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")
    for path, render in PAGES.items():
        app.add_api_route(path, page_of(app, render), include_in_schema=False)


def page_of(
    app: FastAPI, render: Callable[[str, str, str], HTMLResponse]
) -> Callable[[Request], Awaitable[HTMLResponse]]:
    """A route answering `render`'s page, its URLs under the request's root path."""

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        openapi = root + (app.openapi_url or "/openapi.json")
        return keep_to_the_service(render(app.title, openapi, root + ASSETS_PATH))

    return page
