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
from moorage.registry.auth import RegistryAuth
from moorage.registry.context import RegistryContext
from moorage.registry.token import TokenEndpoint
from moorage.services.access import AccessService
from moorage.services.accounts import AccountService
from moorage.services.audit import AuditLog
from moorage.services.authn import Authenticator, Throttle
from moorage.services.blobs import BlobService
from moorage.services.clock import utcnow
from moorage.services.manifests import ManifestService
from moorage.services.repositories import RepositoryService
from moorage.services.tokens import TokenService
from moorage.storage.filesystem import FilesystemBlobStore

log = logging.getLogger("moorage")

SETTINGS_ENV = "MOORAGE_SETTINGS_JSON"


@dataclass
class Components:
    """Everything ``create_app`` built, for the lifespan, the CLI and tests."""

    settings: Settings
    db: Database
    store: FilesystemBlobStore
    registry: RegistryContext
    access: AccessService
    accounts: AccountService
    audit: AuditLog
    authn: Authenticator
    tokens: TokenService
    token_endpoint: TokenEndpoint

    async def prepare(self) -> str | None:
        """Migrate, make sure a signing key and the first administrator exist.

        Returns the administrator's password when it was generated now (to be shown once).
        """
        await self.db.migrate()
        await self.tokens.ensure_key()
        return await self.accounts.bootstrap_admin(self.settings.admin_password)


def build_components(settings: Settings) -> Components:
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    store = FilesystemBlobStore(settings.resolved_storage_dir, durable=settings.durable_writes)
    clock = utcnow
    audit = AuditLog(db, clock)
    access = AccessService(db, settings.create_repository_on_push)
    authn = Authenticator(
        db, audit, clock,
        Throttle(settings.login_max_failures, settings.login_window_seconds, settings.login_lockout_seconds),
        settings.auth_cache_seconds,
    )
    tokens = TokenService(db, clock, settings.resolved_token_service, settings.token_ttl_seconds)
    accounts = AccountService(db, access, audit, authn, clock)
    blobs = BlobService(db, store, clock, settings.max_upload_size)
    manifests = ManifestService(db, blobs, clock, settings.max_manifest_size)
    repositories = RepositoryService(db, clock, access, audit)
    auth = RegistryAuth(tokens, authn, access)
    return Components(
        settings, db, store, RegistryContext(repositories, blobs, manifests, auth), access, accounts, audit, authn,
        tokens, TokenEndpoint(tokens, authn, access, accounts),
    )


class MoorageApp:
    """Top-level ASGI app: ``/v2`` goes straight to the registry protocol, the rest to Starlette."""

    def __init__(self, components: Components) -> None:
        self.components = components
        self.registry = RegistryApp(components.registry)
        self.site = Starlette(
            routes=[
                Route("/", self._index),
                Route("/healthz", self._health),
                Route("/auth/token", components.token_endpoint.handle, methods=["GET", "POST"]),
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
                    generated = await self.components.prepare()
                    if generated:
                        print(f"Created the administrator 'admin' with password: {generated}", flush=True)
                        print("  (shown once: sign in and change it, or set MOORAGE_ADMIN_PASSWORD)", flush=True)
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
