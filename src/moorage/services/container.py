"""``build_services(settings)``: every service, built once and wired to its collaborators.

The faces take what they need from here: ``app.py`` wraps it in the ASGI application, the
CLI's administrative commands use it directly on the same database and storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from moorage.config import Settings
from moorage.db.engine import Database
from moorage.scanner.layers import Limits
from moorage.services.access import AccessService
from moorage.services.accounts import AccountService
from moorage.services.artifacts import ArtifactService
from moorage.services.audit import AuditLog
from moorage.services.authn import Authenticator, Throttle
from moorage.services.blobs import BlobService
from moorage.services.clock import Clock, utcnow
from moorage.services.manifests import ManifestService
from moorage.services.passwords import PasswordHashing
from moorage.services.repositories import RepositoryService
from moorage.services.scanning import ScanService
from moorage.services.tokens import TokenService
from moorage.services.vulndb import VulnDbService
from moorage.storage.filesystem import FilesystemBlobStore


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    store: FilesystemBlobStore
    audit: AuditLog
    access: AccessService
    passwords: PasswordHashing
    authn: Authenticator
    tokens: TokenService
    accounts: AccountService
    blobs: BlobService
    manifests: ManifestService
    repositories: RepositoryService
    artifacts: ArtifactService
    vulndb: VulnDbService
    scanning: ScanService

    async def prepare(self) -> str | None:
        """Migrate, make sure a signing key and the first administrator exist.

        Returns the administrator's password when it was generated now (to be shown once).
        """
        await self.db.migrate()
        await self.tokens.ensure_key()
        return await self.accounts.bootstrap_admin(self.settings.admin_password)

    async def close(self) -> None:
        await self.db.close()


def build_services(settings: Settings, clock: Clock = utcnow) -> Services:
    db = Database(settings.resolved_database_url, schema=settings.database_schema)
    store = FilesystemBlobStore(settings.resolved_storage_dir, durable=settings.durable_writes)
    audit = AuditLog(db, clock)
    access = AccessService(db, settings.create_repository_on_push)
    passwords = PasswordHashing(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )
    authn = Authenticator(
        db,
        audit,
        clock,
        Throttle(settings.login_max_failures, settings.login_window_seconds, settings.login_lockout_seconds),
        passwords,
        settings.auth_cache_seconds,
    )
    tokens = TokenService(db, clock, settings.resolved_token_service, settings.token_ttl_seconds)
    accounts = AccountService(db, access, audit, authn, clock, passwords)
    blobs = BlobService(db, store, clock, settings.max_upload_size)
    manifests = ManifestService(db, blobs, clock, settings.max_manifest_size)
    repositories = RepositoryService(db, clock, access, audit)
    artifacts = ArtifactService(db, access, blobs)
    vulndb = VulnDbService(db, clock)
    scanning = ScanService(
        db,
        store,
        vulndb,
        access,
        clock,
        Limits(max_unpacked_bytes=settings.scan_max_unpacked_bytes, max_files=settings.scan_max_files),
        settings.scan_concurrency,
        settings.scan_on_push_default,
    )
    manifests.on_push = scanning.on_push
    artifacts.scans = scanning
    return Services(
        settings,
        clock,
        db,
        store,
        audit,
        access,
        passwords,
        authn,
        tokens,
        accounts,
        blobs,
        manifests,
        repositories,
        artifacts,
        vulndb,
        scanning,
    )
