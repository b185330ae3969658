"""/docs and /redoc in a real browser with no way out: everything not to the service is
aborted, and both pages still render every operation of the served document. Neither
even tries to leave: nothing is aborted and their Content-Security-Policy blocks nothing
(the vendored ReDoc no longer draws Redocly's logo from its CDN)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Route, expect

from api.openapi import operations
from tests.conftest import Server


@pytest.fixture
def offline(page: Page, api_server: Server) -> Iterator[list[str]]:
    """`page` with every request not to the service aborted; the aborted URLs, which the
    test checks stay none (the pages do not even try to leave)."""
    aborted: list[str] = []

    def route(route: Route) -> None:
        url = route.request.url
        if url == api_server.url or url.startswith(f"{api_server.url}/"):
            route.continue_()
        else:
            aborted.append(url)
            route.abort("internetdisconnected")

    page.context.route("**/*", route)
    page.add_init_script(
        "window.blocked = [];"
        "document.addEventListener('securitypolicyviolation', (e) => window.blocked.push("
        "e.blockedURI));"
    )
    yield aborted


def blocked_by_policy(page: Page) -> list[str]:
    blocked: list[str] = page.evaluate("window.blocked")
    return blocked


def operation_ids(api_server: Server) -> list[str]:
    with api_server.client() as http:
        document = http.get("/openapi.json").json()
    return [operation["operationId"] for _, _, operation in operations(document)]


def test_swagger_ui_renders_every_operation_offline(
    page: Page, api_server: Server, offline: list[str]
) -> None:
    expected = operation_ids(api_server)
    assert len(expected) >= 30
    page.goto(f"{api_server.url}/docs")
    blocks = page.locator(".swagger-ui .opblock")
    expect(blocks).to_have_count(len(expected), timeout=60_000)
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("gradwatch")
    # Swagger UI names each block by its operation id: every one is there
    shown = page.locator(".swagger-ui .opblock").evaluate_all("(bs) => bs.map((b) => b.id)")
    ids = {block.rsplit("-", 1)[-1] for block in shown}
    assert ids == set(expected), set(expected) ^ ids
    # an operation opens, with its parameters and its responses' schemas
    create = page.locator(".opblock", has_text="/v1/experiments").filter(has_text="POST").first
    create.locator(".opblock-summary").click()
    expect(create.locator(".responses-wrapper")).to_contain_text("202")
    assert offline == []
    assert blocked_by_policy(page) == []


def test_redoc_renders_every_operation_offline(
    page: Page, api_server: Server, offline: list[str]
) -> None:
    expected = operation_ids(api_server)
    page.goto(f"{api_server.url}/redoc")
    sections = page.locator("[data-section-id^='operation/']")
    expect(sections).to_have_count(len(expected), timeout=60_000)
    shown = sections.evaluate_all("(s) => s.map((e) => e.dataset.sectionId)")
    assert {section.removeprefix("operation/") for section in shown} == set(expected)
    expect(page.locator("h1").first).to_contain_text("gradwatch")
    # the side menu lists them by tag, and a click goes to one
    page.locator("[data-item-id='tag/experiments']").click()
    page.locator("[data-item-id$='operation/create_experiment']").click()
    expect(page.locator("[data-section-id='operation/create_experiment'] h2")).to_be_visible()
    assert offline == []
    assert blocked_by_policy(page) == []
