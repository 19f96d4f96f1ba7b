"""The ``/v2/`` ASGI application: match the route, check the method, call the handler,
and turn typed errors into the spec's envelope."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moorage.oci.errors import NameInvalid, RegistryError, TooManyRequests, Unsupported
from moorage.registry import blobs, discovery, manifests
from moorage.registry.auth import AuthChallenge
from moorage.registry.context import RegistryContext
from moorage.registry.errors import error_response
from moorage.registry.routing import Match, match

log = logging.getLogger("moorage.registry")

Handler = Callable[[RegistryContext, Request, Match], Awaitable[Response | ASGIApp]]

API_VERSION_HEADER = (b"docker-distribution-api-version", b"registry/2.0")


async def _base(ctx: RegistryContext, request: Request, m: Match) -> Response:
    return Response(b"{}", media_type="application/json")


_HANDLERS: dict[str, tuple[frozenset[str], Handler]] = {
    "base": (frozenset({"GET", "HEAD"}), _base),
    "catalog": (frozenset({"GET"}), discovery.catalog),
    "tags": (frozenset({"GET"}), discovery.tags),
    "manifest": (frozenset({"GET", "HEAD", "PUT", "DELETE"}), manifests.manifest),
    "upload_start": (frozenset({"POST"}), blobs.upload_start),
    "upload": (frozenset({"GET", "PATCH", "PUT", "DELETE"}), blobs.upload),
    "blob": (frozenset({"GET", "HEAD", "DELETE"}), blobs.blob),
    "referrers": (frozenset({"GET"}), discovery.referrers),
}


class RegistryApp:
    """ASGI app for every path under ``/v2``."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), API_VERSION_HEADER]
            await send(message)

        request = Request(scope, receive)
        response = await self._dispatch(request)
        await response(scope, receive, send_with_version)

    async def _dispatch(self, request: Request) -> ASGIApp:
        # scope["path"], not request.url.path: building the URL object cost ~3% of a manifest GET.
        m = match(request.scope["path"])
        try:
            if m is None:
                raise NameInvalid(f"no registry API route matches {request.scope['path'][:200]!r}")
            methods, handler = _HANDLERS[m.route]
            if request.method not in methods:
                return error_response(
                    Unsupported(f"{request.method} is not supported on this endpoint"),
                    headers={"Allow": ", ".join(sorted(methods))},
                    status=405,
                )
            request.state.caller = await self.ctx.auth.authorize(request, m)
            return await handler(self.ctx, request, m)
        except AuthChallenge as exc:
            return error_response(
                exc, headers={"WWW-Authenticate": self.ctx.auth.challenge_header(request, exc)}
            )
        except TooManyRequests as exc:
            retry = exc.detail.get("retryAfter") if isinstance(exc.detail, dict) else None
            return error_response(exc, headers={"Retry-After": str(retry or 60)})
        except RegistryError as exc:
            # For HEAD the server sends the headers only (Content-Length stays the body's).
            return error_response(exc)
