"""``create_app(settings)``: the one place where Moorage's pieces are built and wired."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from moorage import __version__
from moorage.config import Settings, load_settings
from moorage.db.engine import Database
from moorage.registry.app import RegistryApp
from moorage.registry.context import RegistryContext
from moorage.services.blobs import BlobService
from moorage.services.clock import utcnow
from moorage.services.manifests import ManifestService
from moorage.services.repositories import RepositoryService
from moorage.storage.filesystem import FilesystemBlobStore

log = logging.getLogger("moorage")

SETTINGS_ENV = "MOORAGE_SETTINGS_JSON"


@dataclass
class Components:
    """Everything ``create_app`` built, for the lifespan and for tests."""

    settings: Settings
    db: Database
    store: FilesystemBlobStore
    registry: RegistryContext


def build_components(settings: Settings) -> Components:
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    store = FilesystemBlobStore(settings.resolved_storage_dir, durable=settings.durable_writes)
    blobs = BlobService(db, store, utcnow, settings.max_upload_size)
    manifests = ManifestService(db, blobs, utcnow, settings.max_manifest_size)
    repositories = RepositoryService(db, utcnow)
    return Components(settings, db, store, RegistryContext(repositories, blobs, manifests))


class MoorageApp:
    """Top-level ASGI app: ``/v2`` goes straight to the registry protocol, the rest to Starlette."""

    def __init__(self, components: Components) -> None:
        self.components = components
        self.registry = RegistryApp(components.registry)
        self.site = Starlette(
            routes=[
                Route("/", self._index),
                Route("/healthz", self._health),
            ],
        )

    async def _index(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"Moorage {__version__}: OCI registry API at /v2/\n")

    async def _health(self, request: Request) -> JSONResponse:
        async with self.components.db.read() as conn:
            await conn.exec_driver_sql("SELECT 1")
        return JSONResponse({"status": "ok", "version": __version__})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path == "/v2" or path.startswith("/v2/"):
                await self.registry(scope, receive, send)
            else:
                await self.site(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.components.db.migrate()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.components.db.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings) -> MoorageApp:
    return MoorageApp(build_components(settings))


def create_app_from_environment() -> MoorageApp:
    """Factory for server workers: settings arrive serialised in ``MOORAGE_SETTINGS_JSON``."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(raw) if raw else load_settings()
    return create_app(settings)
