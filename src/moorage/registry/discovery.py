"""Content discovery: tag lists, the catalog and the referrers API."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from moorage.oci import mediatypes as mt
from moorage.oci.errors import PaginationInvalid
from moorage.oci.reference import validate_name
from moorage.registry.context import RegistryContext
from moorage.registry.routing import Match

#: Page size when the client gives no ``n`` (catalog), and the most any page returns.
DEFAULT_PAGE = 1000
MAX_PAGE = 10000


def _page_size(request: Request, default: int | None) -> int | None:
    raw = request.query_params.get("n")
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise PaginationInvalid(f"n must be a non-negative integer, not {raw[:20]!r}")
    return min(int(raw), MAX_PAGE)


def _last(request: Request) -> str | None:
    last = request.query_params.get("last")
    if last is not None and "\x00" in last:  # nothing is named so, and PostgreSQL refuses it in a query
        raise PaginationInvalid("last must not contain a NUL character")
    return last


def _json(
    document: object, headers: dict[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    return Response(json.dumps(document).encode(), media_type=media_type, headers=headers)


def _next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


async def tags(ctx: RegistryContext, request: Request, m: Match) -> Response:
    name = validate_name(m.name)
    limit = _page_size(request, None)
    last = _last(request)
    if limit == 0:
        return _json({"name": name, "tags": []})
    found = await ctx.manifests.tags(name, last, limit + 1 if limit is not None else None)
    headers = {}
    if limit is not None and len(found) > limit:
        found = found[:limit]
        headers["Link"] = _next_link(f"/v2/{name}/tags/list", limit, found[-1])
    return _json({"name": name, "tags": found}, headers)


async def catalog(ctx: RegistryContext, request: Request, m: Match) -> Response:
    limit = _page_size(request, DEFAULT_PAGE) or 0
    last = _last(request)
    if limit == 0:
        return _json({"repositories": []})
    found = await ctx.repositories.catalog(last, limit + 1, request.state.caller.principal)
    headers = {}
    if len(found) > limit:
        found = found[:limit]
        headers["Link"] = _next_link("/v2/_catalog", limit, found[-1])
    return _json({"repositories": found}, headers)


async def referrers(ctx: RegistryContext, request: Request, m: Match) -> Response:
    name = validate_name(m.name)
    artifact_type = request.query_params.get("artifactType") or None
    found = await ctx.manifests.referrers(name, m.reference, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return _json(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}, headers, media_type=mt.OCI_INDEX
    )
