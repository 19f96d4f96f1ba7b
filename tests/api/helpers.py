"""Shared by the management API tests: the prefix, a password, clients signed in as a user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from moorage.app import MoorageApp

API = "/api/v1"
PASSWORD = "correct-horse-battery"

#: ``await new_user("bob")`` creates bob (through the API, as the administrator) and returns
#: a client signed in as bob.
UserFactory = Callable[..., Awaitable[httpx.AsyncClient]]


def as_user(app: MoorageApp, username: str, secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://moorage.test", auth=(username, secret)
    )


async def make_repository(client: httpx.AsyncClient, name: str, **fields: object) -> dict[str, object]:
    r = await client.post(f"{API}/repositories", json={"name": name, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body
