"""Warming a server worker up before it takes its first request.

A worker's first requests pay for work done once per process: anyio imports its thread
backend and starts a worker thread, the blob store starts its threads, SQLAlchemy compiles
each statement, the token library loads its key and the JSON and JWT code paths run cold.
Measured on a 2-core VM: a worker's first 1 MiB push took 20-45 ms against 3-4 ms for the
next ones, and a restarted registry's first client waited for all of it.

``warm_up`` does that work at startup, mostly through the app itself: a few requests that read
and never write (a token challenge, then, with a token signed here, a manifest, a blob and an
upload that cannot exist, each answered 404); then an upload's statements run once in a
transaction that is rolled back. Content is asked for by the digest of 64 zero
hex digits, which no content has (it would take a sha256 preimage), so even when a
repository of that name exists nothing is found and no pull is recorded.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message

from moorage.services.container import Services

log = logging.getLogger("moorage")

WARM_UP_REPOSITORY = "moorage-warm-up/probe"
#: no content hashes to it (see the module's docstring)
ABSENT_DIGEST = "sha256:" + "0" * 64


async def _request(app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Send one bodiless request through ``app`` in-process; its status code."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
    }
    status = 0
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def warm_up(app: ASGIApp, services: Services) -> dict[str, int]:
    """Do a worker's first-use work now (see the module's docstring). Returns the status of
    each warm-up request; nothing is written."""
    started = time.perf_counter()
    await anyio.to_thread.run_sync(int)
    await services.store.warm_up()
    await services.authn.principal(WARM_UP_REPOSITORY)  # no such user: a name holds no "/"
    token, _, _ = await services.tokens.issue(
        None, [{"type": "repository", "name": WARM_UP_REPOSITORY, "actions": ["pull", "push"]}]
    )
    bearer = [(b"authorization", f"Bearer {token}".encode())]
    base = f"/v2/{WARM_UP_REPOSITORY}"
    statuses = {
        "GET /v2/": await _request(app, "GET", "/v2/", []),
        "HEAD manifest": await _request(app, "HEAD", f"{base}/manifests/{ABSENT_DIGEST}", bearer),
        "HEAD blob": await _request(app, "HEAD", f"{base}/blobs/{ABSENT_DIGEST}", bearer),
        "GET upload": await _request(app, "GET", f"{base}/blobs/uploads/{uuid.uuid4()}", bearer),
    }
    await services.blobs.warm_up(WARM_UP_REPOSITORY, ABSENT_DIGEST)
    log.debug("warmed up in %.1f ms: %s", (time.perf_counter() - started) * 1000, statuses)
    return statuses
