"""``build_services(settings)``: every service, built once and wired to its collaborators.

The faces take what they need from here: ``app.py`` wraps it in the ASGI application, the
CLI's administrative commands use it directly on the same database and storage.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.config import Settings
from moorage.db.engine import Database
from moorage.scanner.layers import Limits
from moorage.services import events as ev
from moorage.services.access import AccessService
from moorage.services.accounts import AccountService
from moorage.services.activity import ActivityService
from moorage.services.artifacts import ArtifactService
from moorage.services.audit import AuditLog
from moorage.services.authn import Authenticator, Throttle
from moorage.services.blobs import BlobService
from moorage.services.clock import Clock, utcnow
from moorage.services.events import EventLog
from moorage.services.gc import JOB_KIND as GC_JOB_KIND
from moorage.services.gc import GcService
from moorage.services.jobs import JobService
from moorage.services.manifests import ManifestService
from moorage.services.mirroring import MirrorService
from moorage.services.passwords import PasswordHashing
from moorage.services.policies import ContentFacts, PromotionService
from moorage.services.pruning import PruningService
from moorage.services.repositories import RepositoryService
from moorage.services.scanning import ScanService
from moorage.services.tokens import TokenService
from moorage.services.vulndb import VulnDbService
from moorage.services.webhooks import Renderer, WebhookService
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
    events: EventLog
    jobs: JobService
    webhooks: WebhookService
    activity: ActivityService
    mirroring: MirrorService
    promotion: PromotionService
    pruning: PruningService
    gc: GcService

    async def prepare(self) -> str | None:
        """Migrate, make sure a signing key and the first administrator exist.

        Returns the administrator's password when it was generated now (to be shown once).
        """
        await self.db.migrate()
        await self.events.start_consumers()
        await self.tokens.ensure_key()
        await self.gc.apply_configured_schedule()
        return await self.accounts.bootstrap_admin(self.settings.admin_password)

    async def close(self) -> None:
        await self.db.close()


def build_services(settings: Settings, clock: Clock = utcnow) -> Services:
    db = Database(
        settings.resolved_database_url,
        schema=settings.database_schema,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    store = FilesystemBlobStore(settings.resolved_storage_dir, durable=settings.durable_writes)
    audit = AuditLog(db, clock)
    events = EventLog(db, clock, record_pulls=settings.pull_events)
    jobs = JobService(db, clock)
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
    manifests = ManifestService(db, blobs, clock, settings.max_manifest_size, events)

    async def repository_created(conn: AsyncConnection, name: str) -> None:
        await events.emit(conn, ev.REPO_CREATED, repository=name, contents={"createdBy": "push"})

    blobs.on_repository_created = repository_created
    repositories = RepositoryService(db, clock, access, audit, events)
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
    manifests.push_subscriber = scanning
    artifacts.scans = scanning
    scanning.events = events
    scanning.register(jobs)
    vulndb.events = events
    webhooks = WebhookService(
        db,
        clock,
        access,
        audit,
        events,
        jobs,
        Renderer(settings.resolved_external_url),
        settings.webhook_timeout_seconds,
        settings.webhook_max_attempts,
        settings.webhook_backoff_seconds,
    )
    webhooks.register()
    mirroring = MirrorService(db, clock, access, events, jobs, blobs, manifests)
    mirroring.register()
    facts = ContentFacts(db, blobs, scanning)
    promotion = PromotionService(db, clock, access, blobs, manifests, events, jobs, facts)
    promotion.register()
    pruning = PruningService(db, clock, access, manifests, jobs, facts, events)
    pruning.register()
    gc = GcService(db, store, jobs, clock, dt.timedelta(hours=settings.gc_grace_hours), settings.gc_schedule)
    jobs.handle(GC_JOB_KIND, gc.handle_job)
    return Services(
        settings=settings,
        clock=clock,
        db=db,
        store=store,
        audit=audit,
        access=access,
        passwords=passwords,
        authn=authn,
        tokens=tokens,
        accounts=accounts,
        blobs=blobs,
        manifests=manifests,
        repositories=repositories,
        artifacts=artifacts,
        vulndb=vulndb,
        scanning=scanning,
        events=events,
        jobs=jobs,
        webhooks=webhooks,
        activity=ActivityService(events, jobs, access),
        mirroring=mirroring,
        promotion=promotion,
        pruning=pruning,
        gc=gc,
    )
