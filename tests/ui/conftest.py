"""Browser tests: Playwright (the Python package) driving Debian's Chromium, never a downloaded
browser. ``make test`` installs Chromium (Debian package ``chromium``) with the other tools."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = os.environ.get("MOORAGE_TEST_CHROMIUM", "/usr/bin/chromium")
#: Screenshots of the main pages, kept as test artifacts (``build/`` is git-ignored).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Per module: while Playwright's sync API is open its event loop runs on this thread, so it
    must be closed before the asyncio tests of later modules run."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make system-deps` does)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
