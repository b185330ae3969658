"""/docs and /redoc work offline: every script, style and icon they load is the service's own."""

from __future__ import annotations

import re

import httpx
import pytest

from api.docs_pages import ASSETS

ASSET_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_nothing_from_elsewhere(client: httpx.Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    # what the vendored scripts might fetch from elsewhere (ReDoc's logo) is blocked too
    assert "default-src 'self'" in response.headers["content-security-policy"]
    html = response.text

    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE), html
    assets = ASSET_URL.findall(html)
    assert len(assets) >= 2, html  # the script and the icon, at least
    for url in assets:
        assert url.startswith("/docs/assets/"), url
        served = client.get(url)
        assert served.status_code == 200, url
        assert served.content == (ASSETS / url.rsplit("/", 1)[1]).read_bytes()
    assert "/openapi.json" in html


def test_the_assets_are_cacheable_and_typed(client: httpx.Client) -> None:
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"]
    assert client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    again = client.get(
        "/docs/assets/swagger-ui-bundle.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    assert client.head("/docs/assets/redoc.standalone.js").status_code == 200
    assert client.get("/docs/assets/nothing.js").status_code == 404


def test_each_vendored_file_has_its_licence() -> None:
    names = {path.name for path in ASSETS.iterdir()}
    assert {"LICENSE-swagger-ui.txt", "LICENSE-redoc.txt", "README.md"} <= names
    readme = (ASSETS / "README.md").read_text()
    for name in names - {"README.md"} - {n for n in names if n.startswith("LICENSE")}:
        assert name in readme, name
