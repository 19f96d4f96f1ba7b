"""Manifest endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from moorage.oci.errors import ManifestInvalid, PayloadTooLarge
from moorage.oci.reference import validate_name
from moorage.registry.context import RegistryContext
from moorage.registry.responses import BytesResponse
from moorage.registry.routing import Match


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"manifest of {declared} bytes exceeds the limit of {limit} bytes", {"limit": limit}
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"manifest exceeds the limit of {limit} bytes", {"limit": limit})
    return bytes(body)


async def manifest(ctx: RegistryContext, request: Request, m: Match) -> Response | BytesResponse:
    name = validate_name(m.name)
    method = request.method
    if method in ("GET", "HEAD"):
        found = await ctx.manifests.get(name, m.reference, request.state.caller.name)
        digest = found.digest.encode()
        raw = [
            (b"content-type", found.media_type.encode("latin-1")),
            (b"docker-content-digest", digest),
            (b"etag", b'"' + digest + b'"'),
            (b"content-length", str(len(found.content)).encode()),
        ]
        return BytesResponse(200, raw, b"" if method == "HEAD" else found.content)
    if method == "DELETE":
        await ctx.manifests.delete(name, m.reference, request.state.caller.name)
        return Response(status_code=202)
    content = await _read_limited(request, ctx.manifests.max_manifest_size)
    if not content:
        raise ManifestInvalid("manifest invalid: the request body is empty")
    pushed = await ctx.manifests.put(
        name, m.reference, content, request.headers.get("content-type"), pushed_by=request.state.caller.name
    )
    headers = {
        "Location": f"/v2/{name}/manifests/{pushed.digest}",
        "Docker-Content-Digest": pushed.digest,
        "Content-Length": "0",
    }
    if pushed.subject:
        headers["OCI-Subject"] = pushed.subject
    return Response(status_code=201, headers=headers)
