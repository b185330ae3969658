"""The pages and their files as any HTTP client sees them: HTML, offline, no CDN."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import httpx
import pytest

from api.ui import HERE

ID = "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"
PAGES = [
    "/",
    "/new",
    "/datasets",
    f"/experiments/{ID}",
    f"/studies/{ID}",
    f"/compare?ids={ID},{ID}",
]


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_html_that_loads_scripts_from_this_service_alone(
    client: httpx.Client, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]*)"', response.text)
    assert sources and all(s.startswith(("/", "#", "data:")) for s in sources), sources


def test_the_script_style_and_vendored_library_are_served_with_its_licence(
    client: httpx.Client,
) -> None:
    for name in (
        "gradwatch.js",
        "gradwatch.css",
        "vendor/uPlot.iife.min.js",
        "vendor/uPlot.LICENSE",
    ):
        response = client.get(f"/ui/static/{name}")
        assert response.status_code == 200, name
        assert response.headers.get("etag")
    assert "MIT" in client.get("/ui/static/vendor/uPlot.LICENSE").text


# The page's script and every module it imports, however deep, with relative paths.
IMPORT = re.compile(r'^import [^;]* from "(\.{1,2}/[^"]+\.js)";', re.MULTILINE)


def test_every_module_the_page_imports_is_served_as_javascript_with_an_etag(
    client: httpx.Client,
) -> None:
    """The entry and its imports, followed by URL as a browser does: each a native module
    (a module script needs a JavaScript type), cacheable, and every one of static/js reached."""
    seen: set[str] = set()
    waiting = ["/ui/static/gradwatch.js"]
    while waiting:
        url = waiting.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        assert response.status_code == 200, url
        assert "javascript" in response.headers["content-type"], url
        assert response.headers.get("etag"), url
        base = PurePosixPath(url).parent
        for target in IMPORT.findall(response.text):
            parts: list[str] = []
            for part in (base / target).parts:
                if part == "..":
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            waiting.append("/" + "/".join(parts[1:]))
    on_disk = {f"/ui/static/{p.relative_to(HERE / 'static').as_posix()}" for p in SCRIPTS}
    assert seen == on_disk


SCRIPTS = [HERE / "static/gradwatch.js", *sorted((HERE / "static/js").rglob("*.js"))]


def test_each_page_preloads_every_module_the_script_imports(client: httpx.Client) -> None:
    """One round of requests for the whole script, not one per level of imports."""
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', client.get("/").text))
    modules = {f"/ui/static/{p.relative_to(HERE / 'static').as_posix()}" for p in SCRIPTS[1:]}
    assert preloaded == modules


def test_no_script_module_is_over_700_lines() -> None:
    assert len(SCRIPTS) > 2
    for path in SCRIPTS:
        assert len(path.read_text().splitlines()) <= 700, path


def test_no_page_file_names_another_origin() -> None:
    own = [
        *HERE.glob("templates/*.html"),
        *SCRIPTS,
        HERE / "static/gradwatch.css",
    ]
    for path in own:
        assert not re.search(r"https?://", path.read_text()), path


def test_a_page_id_that_is_not_an_id_is_a_problem_not_a_page(client: httpx.Client) -> None:
    response = client.get("/experiments/not-an-id!")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_the_ui_is_not_part_of_the_api_contract(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [
        path for path in paths if not path.startswith(("/v1", "/healthz", "/readyz", "/metrics"))
    ]
