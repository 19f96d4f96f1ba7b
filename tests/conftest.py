"""Shared fixtures: settings on SQLite and PostgreSQL, an in-process app, a real server process."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from moorage.app import MoorageApp, create_app
from moorage.config import Settings

#: PostgreSQL on these machines (trust auth). Override with MOORAGE_TEST_POSTGRES_URL.
POSTGRES_URL = os.environ.get(
    "MOORAGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
#: The first administrator's password in every test registry.
ADMIN_PASSWORD = "moorage-admin-password"
#: Argon2 at its smallest cost: the suite creates and signs in many users. The production
#: parameters are exercised in tests/services/test_authn.py.
CHEAP_PASSWORD_HASHING = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "password_hash_parallelism": 1,
}


@dataclass(frozen=True)
class Backend:
    name: str
    url: str | None
    schema: str | None


async def _pg_schema(action: str, schema: str) -> None:
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.begin() as conn:
            if action == "create":
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            else:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each test using it runs twice: on SQLite (a file) and on PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        yield Backend("sqlite", None, None)
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_pg_schema("create", schema))
    try:
        yield Backend("postgresql", POSTGRES_URL, schema)
    finally:
        asyncio.run(_pg_schema("drop", schema))


def make_settings(data_dir: Path, backend: Backend | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "durable_writes": False,
        "admin_password": ADMIN_PASSWORD,
    }
    values.update(CHEAP_PASSWORD_HASHING)
    if backend is not None and backend.url:
        values["database_url"] = backend.url
        values["database_schema"] = backend.schema
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path / "data", backend)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[MoorageApp]:
    application = create_app(settings)
    await application.services.prepare()
    try:
        yield application
    finally:
        await application.services.db.close()


@pytest.fixture
async def client(app: MoorageApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as the administrator (HTTP basic)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://moorage.test", auth=("admin", ADMIN_PASSWORD)
    ) as c:
        yield c


@pytest.fixture
async def anonymous(app: MoorageApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no credentials."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://moorage.test") as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A real ``moorage serve`` process."""

    host: str  # host:port, as clients such as skopeo want it
    username = "admin"
    password = ADMIN_PASSWORD
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=20)


def start_server(
    data_dir: Path, env: dict[str, str] | None = None, port: int | None = None, ca_cert: Path | None = None
) -> ServerProcess:
    """Start ``moorage serve``; with ``ca_cert`` over HTTPS (``env`` sets ``MOORAGE_TLS_*``), trusting that CA."""
    port = port or free_port()
    log = data_dir.parent / f"server-{port}.log"
    full_env = {
        **os.environ,
        "MOORAGE_DURABLE_WRITES": "false",
        "MOORAGE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **{f"MOORAGE_{k.upper()}": str(v) for k, v in CHEAP_PASSWORD_HASHING.items()},
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "moorage", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    url = f"{'https' if ca_cert else 'http'}://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(ca_cert)) if ca_cert else True
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moorage serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1, verify=verify).status_code == 200:
                return ServerProcess(f"127.0.0.1:{port}", url, data_dir, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"moorage serve did not become healthy:\n{log.read_text()}")


def backend_env(backend: Backend) -> dict[str, str]:
    if backend.url is None:
        return {}
    return {"MOORAGE_DATABASE_URL": backend.url, "MOORAGE_DATABASE_SCHEMA": backend.schema or ""}


@pytest.fixture
def server(tmp_path: Path, backend: Backend) -> Iterator[ServerProcess]:
    """A real server process on a free loopback port, on SQLite or PostgreSQL."""
    proc = start_server(tmp_path / "data", backend_env(backend))
    try:
        yield proc
    finally:
        proc.stop()
