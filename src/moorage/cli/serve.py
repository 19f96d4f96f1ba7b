"""``moorage serve``: run the registry."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from typing import cast

from moorage.config import SETTINGS_ENV, Settings

#: glibc malloc: allocations below this come from the heap, not a fresh ``mmap`` each.
MMAP_THRESHOLD = 8 << 20
#: glibc malloc: free memory at the heap's top kept for reuse, rather than handed back at once.
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> None:
    """Let glibc reuse the memory of request bodies instead of mapping and unmapping it.

    A blob upload arrives as a stream of 64-256 KiB ``bytes`` objects, each freed once written.
    With glibc's defaults such buffers keep crossing its ``mmap`` threshold and trim the heap,
    and every new page then costs a page fault (about 85 per MiB pushed here, a tenth of the
    server's CPU on a push, measured with ``perf``). This process gets the setting through
    ``mallopt``; worker processes through the environment, which glibc reads as they start
    (a value already in the environment is left as the operator set it).
    """
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    for param, name in (
        (_M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
        (_M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"),
    ):
        try:
            mallopt(param, int(os.environ[name]))
        except ValueError:  # the operator's value, not a number: glibc ignores it too
            continue


def prepare(settings: Settings) -> None:
    """Migrate the database, create the signing key and the first administrator, once, before
    any worker starts; print a generated administrator password (this is the only time it shows)."""
    from moorage.services.container import build_services

    async def run() -> str | None:
        components = build_services(settings)
        try:
            return await components.prepare()
        finally:
            await components.db.close()

    generated = asyncio.run(run())
    if generated:
        print(f"Created the administrator 'admin' with password: {generated}", flush=True)
        print(
            "  (shown once: sign in and change it, or set MOORAGE_ADMIN_PASSWORD before the first start)",
            flush=True,
        )


def serve(settings: Settings) -> None:
    """Migrate the database once, then start the ASGI server with ``settings.workers`` processes."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from moorage.cli.certs import check_serving_certificate

    check_serving_certificate(settings)  # refuses to start with a certificate clients would reject
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prepare(settings)
    tune_allocator()
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    scheme = "https" if settings.tls_cert else "http"
    print(
        f"Moorage listening on {scheme}://{settings.host}:{settings.port} "
        f"(data in {settings.data_dir.resolve()}, database {settings.resolved_database_url.split('://')[0]})",
        flush=True,
    )
    if settings.server == "granian":
        from granian import Granian
        from granian.constants import Interfaces, SSLProtocols

        Granian(
            "moorage.app:create_app_from_environment",
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=settings.workers,
            factory=True,
            ssl_cert=settings.tls_cert,
            ssl_key=settings.tls_key,
            ssl_protocol_min=SSLProtocols.tls12,  # as uvicorn: docker and skopeo builds without TLS 1.3 exist
        ).serve()
        return
    import uvicorn

    from moorage.cli.zerocopy import BufferedHttpProtocol

    uvicorn.run(
        "moorage.app:create_app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        loop="uvloop",
        # httptools behind buffered reads, plus sendfile for blobs. uvicorn's annotation asks for
        # an asyncio.Protocol, but it only calls the class to make each connection's protocol.
        http=cast("type[asyncio.Protocol]", BufferedHttpProtocol),
        server_header=False,
        limit_concurrency=None,
        timeout_keep_alive=30,
    )
