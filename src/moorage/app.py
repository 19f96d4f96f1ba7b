"""``create_app(settings)``: the one place where Moorage's pieces are built and wired."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import os

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from moorage import __version__
from moorage.api.app import PREFIX as API_PREFIX
from moorage.api.app import create_api
from moorage.config import SETTINGS_ENV, Settings, load_settings
from moorage.jobs.runner import EventDispatcher, JobRunner
from moorage.jobs.scans import ScanWorker
from moorage.registry.app import RegistryApp
from moorage.registry.auth import RegistryAuth
from moorage.registry.context import RegistryContext
from moorage.registry.token import TokenEndpoint
from moorage.services.certificates import ca_pem
from moorage.services.container import Services, build_services
from moorage.warmup import warm_up
from moorage.web.app import create_web

log = logging.getLogger("moorage")

HOUSEKEEPING_INTERVAL = 600.0


class MoorageApp:
    """Top-level ASGI app: ``/v2`` goes to the registry protocol, ``/api/v1`` to the management API, the rest
    to Starlette."""

    #: How long a stopping server waits for its background loops to end.
    STOP_WAIT_SECONDS = 30.0

    def __init__(self, services: Services, server_worker: bool = False) -> None:
        self.services = services
        #: a server worker's app is warmed up (``moorage.warmup``) and frozen
        #: (``freeze_startup_objects``) once started; an app inside a test process is neither
        self.server_worker = server_worker
        auth = RegistryAuth(services.tokens, services.authn, services.access)
        self.registry = RegistryApp(
            RegistryContext(services.repositories, services.blobs, services.manifests, auth)
        )
        token_endpoint = TokenEndpoint(services.tokens, services.authn, services.access, services.accounts)
        self.api = create_api(services)
        # The web UI answers everything else, after the site's own routes.
        self.site = create_web(
            services,
            extra_routes=[
                Route("/healthz", self._health),
                Route("/ca", self._ca),
                Route("/auth/token", token_endpoint.handle, methods=["GET", "POST"]),
            ],
        )

    async def _ca(self, request: Request) -> Response:
        """The CA certificate clients trust this registry's certificate by (setting ``tls_ca``)."""
        path = self.services.settings.tls_ca
        try:
            pem = ca_pem(path) if path is not None else None
        except (OSError, ValueError):
            pem = None
        if pem is None:
            return PlainTextResponse(
                "This registry has no CA certificate to hand out (setting tls_ca): ask its "
                "operator for the CA that signed its certificate. See docs/tls.md.\n",
                404,
            )
        return Response(
            pem,
            media_type="application/x-pem-file",
            headers={"Content-Disposition": 'attachment; filename="ca.crt"'},
        )

    async def _health(self, request: Request) -> JSONResponse:
        async with self.services.db.read() as conn:
            await conn.exec_driver_sql("SELECT 1")
        return JSONResponse({"status": "ok", "version": __version__})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path == "/v2" or path.startswith("/v2/"):
                await self.registry(scope, receive, send)
            elif path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                # Mounted by hand: Starlette's Mount cannot route paths holding a newline.
                await self.api({**scope, "root_path": API_PREFIX}, receive, send)
            else:
                await self.site(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _housekeeping(self) -> None:
        """Periodic upkeep of this process: discard uploads idle past ``upload_expiry_hours``."""
        max_age = dt.timedelta(hours=self.services.settings.upload_expiry_hours)
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            try:
                expired = await self.services.blobs.expire_uploads(max_age)
                if expired:
                    log.info("discarded %d idle uploads", expired)
            except Exception:
                log.exception("housekeeping failed; retrying at the next interval")

    def _start_workers(self) -> list[asyncio.Task[None]]:
        """This process's background loops: housekeeping, scans, jobs and schedules, events."""
        settings = self.services.settings
        loops = [self._housekeeping(), EventDispatcher(self.services.events).run()]
        if settings.scan_concurrency > 0:
            loops.append(ScanWorker(self.services.scanning, settings.scan_concurrency).run())
        if settings.job_concurrency > 0:
            loops.append(JobRunner(self.services.jobs, settings.job_concurrency).run())
        return [asyncio.create_task(loop) for loop in loops]

    async def _stop_workers(self, workers: list[asyncio.Task[None]]) -> None:
        """Cancel the background loops and wait for them, at most ``STOP_WAIT_SECONDS``: a loop
        that does not end (a bug) is logged, never a reason for the server not to stop. What it
        was working on stays claimed in the database and is queued again by the next start."""
        if not workers:
            return
        for task in workers:
            task.cancel()
        _, pending = await asyncio.wait(workers, timeout=self.STOP_WAIT_SECONDS)
        for task in pending:
            log.error("a background loop did not stop within %.0f s: %r", self.STOP_WAIT_SECONDS, task)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    generated = await self.services.prepare()
                    if generated:
                        print(f"Created the administrator 'admin' with password: {generated}", flush=True)
                        print(
                            "  (shown once: sign in and change it, or set MOORAGE_ADMIN_PASSWORD)", flush=True
                        )
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.server_worker:
                    try:
                        await warm_up(self, self.services)
                    except Exception:  # only slower first requests: never a reason not to serve
                        log.warning("warming up failed; serving anyway", exc_info=True)
                workers = self._start_workers()
                if self.server_worker:
                    freeze_startup_objects()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop_workers(workers)
                await self.services.store.close()
                await self.services.db.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def freeze_startup_objects() -> None:
    """Take what startup built (modules, ORM metadata, routes, templates, caches) out of the
    cyclic garbage collector's sight, once, in a server worker.

    A full (generation 2) collection visits every tracked object: a worker holds ~180,000 once
    started, and on the 2-core VM measured each such pass stalled the event loop 65-140 ms
    (``gc.callbacks``), a few times per benchmark run, in the middle of whatever request was
    running. Frozen objects are not visited; they are still freed by reference counting, and
    only cycles among them would stay (what startup builds lives as long as the process).
    ``gc.collect()`` first, so that no garbage is frozen."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, server_worker: bool = False) -> MoorageApp:
    return MoorageApp(build_services(settings), server_worker)


def create_app_from_environment() -> MoorageApp:
    """Factory for server workers: settings arrive serialised in ``MOORAGE_SETTINGS_JSON``."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(raw) if raw else load_settings()
    return create_app(settings, server_worker=True)
