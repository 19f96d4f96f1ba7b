"""Web UI tests: a browser-like httpx client (cookies, no basic auth) on the in-process app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.conftest import ADMIN_PASSWORD
from tests.services.test_scanning import osv_django, osv_openssl  # noqa: F401 (fixtures: OSV subsets)
from tests.web.helpers import Browser, browser_client

from moorage.app import MoorageApp


@pytest.fixture
async def browser(app: MoorageApp) -> AsyncIterator[Browser]:
    """An anonymous visitor."""
    async with browser_client(app) as c:
        yield Browser(c)


@pytest.fixture
async def admin_browser(app: MoorageApp) -> AsyncIterator[Browser]:
    """A browser signed in as the administrator."""
    async with browser_client(app) as c:
        b = Browser(c)
        await b.sign_in("admin", ADMIN_PASSWORD)
        yield b
