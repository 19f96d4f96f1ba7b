"""Helpers of the web UI tests: a browser-like httpx client (cookies, forms, CSRF tokens)."""

from __future__ import annotations

import re

import httpx

from moorage.app import MoorageApp

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


class Browser:
    """What a browser does with forms: keep cookies, read the CSRF token from the page, post it back."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.token = ""

    async def get(self, url: str, **kwargs: object) -> httpx.Response:
        r = await self.client.get(url, **kwargs)  # type: ignore[arg-type]
        found = CSRF.search(r.text)
        if found:
            self.token = found.group(1)
        return r

    async def post(
        self, url: str, data: dict[str, object] | None = None, csrf: bool = True
    ) -> httpx.Response:
        body = dict(data or {})
        if csrf and "csrf_token" not in body:
            if not self.token:
                await self.get("/sign-in")
            body["csrf_token"] = self.token
        r = await self.client.post(url, data=body)  # type: ignore[arg-type]
        found = CSRF.search(r.text)
        if found:
            self.token = found.group(1)
        return r

    async def sign_in(self, username: str, password: str) -> httpx.Response:
        await self.get("/sign-in")
        r = await self.post("/sign-in", {"username": username, "password": password})
        assert r.status_code == 303, r.text
        await self.get("/repositories")  # the signed-in page carries the session's CSRF token
        return r


def browser_client(app: MoorageApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://moorage.test", follow_redirects=False
    )
