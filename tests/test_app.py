"""The top-level app: what a server worker does once started (moorage/app.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.conftest import make_settings

import moorage.app
from moorage.app import create_app
from moorage.config import SETTINGS_ENV

# Run in a fresh interpreter: freezing would take this test process's own objects too.
_WORKER = textwrap.dedent(
    """
    import asyncio, gc, json
    from moorage.app import create_app_from_environment

    async def main():
        app = create_app_from_environment()
        inbox = asyncio.Queue()
        outbox = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        lifespan = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
        )
        started = await outbox.get()
        frozen = gc.get_freeze_count()
        statuses = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "root_path": "",
            "query_string": b"", "headers": [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 5000),
        }
        await app(scope, receive, send)
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await outbox.get()
        await lifespan
        print(json.dumps({"started": started["type"], "frozen": frozen, "health": statuses,
                          "stopped": stopped["type"]}))

    asyncio.run(main())
    """
)


def test_a_server_worker_freezes_what_startup_built_and_serves_on(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    env = {**os.environ, SETTINGS_ENV: settings.model_dump_json()}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["started"] == "lifespan.startup.complete"
    # Tens of thousands of objects (modules, ORM metadata, routes), out of the collector's sight.
    assert report["frozen"] > 20_000
    assert report["health"] == [200]
    assert report["stopped"] == "lifespan.shutdown.complete"


def test_an_app_built_in_process_freezes_nothing(tmp_path: Path) -> None:
    assert create_app(make_settings(tmp_path / "data")).server_worker is False


async def test_a_worker_whose_warm_up_fails_still_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_warm_up(*args: object) -> dict[str, int]:
        raise RuntimeError("warm-up broke")

    monkeypatch.setattr(moorage.app, "warm_up", failing_warm_up)
    monkeypatch.setattr(moorage.app, "freeze_startup_objects", lambda: None)  # not in a test process
    app = create_app(make_settings(tmp_path / "data"), server_worker=True)
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    started = asyncio.create_task(outbox.get())
    await asyncio.wait([started, lifespan], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    assert started.done(), f"startup did not complete: {lifespan.exception() if lifespan.done() else 'hung'}"
    assert started.result()["type"] == "lifespan.startup.complete"
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(outbox.get(), 60))["type"] == "lifespan.shutdown.complete"
    await lifespan


async def test_a_background_loop_that_ignores_its_cancel_does_not_keep_the_server_from_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # the kind of bug a lost cancel was

    app = create_app(make_settings(tmp_path / "data"))
    loops: list[asyncio.Task[None]] = []

    def start_workers() -> list[asyncio.Task[None]]:
        loops.append(asyncio.create_task(stubborn()))
        return loops

    monkeypatch.setattr(app, "_start_workers", start_workers)
    monkeypatch.setattr(app, "STOP_WAIT_SECONDS", 0.2)
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), 60))["type"] == "lifespan.startup.complete"
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(outbox.get(), 30))["type"] == "lifespan.shutdown.complete"
    await lifespan
    assert "did not stop within" in caplog.text
    release.set()
    await asyncio.wait_for(loops[0], 5)
