"""A real headless Chromium (Debian's, driven by Playwright) on the real service.

The browser is the system's (`/usr/bin/chromium`, or `GRADWATCH_CHROMIUM`):
Playwright never downloads one. Without it the browser tests are skipped with
the reason, except in CI (`CI=true`), where .ci/run installs it and a missing
browser fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("GRADWATCH_CHROMIUM", "/usr/bin/chromium")
# Long enough for a first job on a fresh worker (TensorFlow loads, the graph compiles).
JOB_MS = 240_000


# Package, not session: Playwright's sync API runs an event loop in this thread until
# it stops, and the anyio tests that run after these cannot start theirs beside it.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the browser tests."""
    if not Path(CHROMIUM).is_file():
        missing = (
            f"no Chromium at {CHROMIUM}: install Debian's (`apt-get install chromium`) or set "
            "GRADWATCH_CHROMIUM to run the browser tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (its own storage) and page; a page error fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.set_default_timeout(30_000)
    yield tab
    context.close()
    assert not errors, errors
