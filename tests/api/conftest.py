"""Fixtures of the management API tests: cheap password hashing, further users."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from tests.api.helpers import API, PASSWORD, UserFactory, as_user

from moorage.app import MoorageApp


@pytest.fixture
async def new_user(app: MoorageApp, client: httpx.AsyncClient) -> AsyncIterator[UserFactory]:
    opened: list[httpx.AsyncClient] = []

    async def make(username: str, password: str = PASSWORD, **fields: object) -> httpx.AsyncClient:
        r = await client.post(f"{API}/users", json={"username": username, "password": password, **fields})
        assert r.status_code == 201, r.text
        c = as_user(app, username, password)
        opened.append(c)
        return c

    yield make
    for c in opened:
        await c.aclose()
