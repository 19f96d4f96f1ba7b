"""Blob and upload endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp

from moorage.oci.errors import BlobUploadInvalid, RangeInvalid, SizeInvalid
from moorage.oci.ranges import parse_content_range, parse_range
from moorage.oci.reference import validate_name
from moorage.registry.context import RegistryContext
from moorage.registry.errors import error_response
from moorage.registry.responses import BlobResponse
from moorage.registry.routing import Match


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BlobUploadInvalid("the client disconnected during the upload") from None


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise SizeInvalid(f"invalid Content-Length {value[:40]!r}")
    return int(value)


async def _checked_body(request: Request) -> AsyncIterator[bytes]:
    """The body, refusing one whose length differs from its ``Content-Length``."""
    declared = _content_length(request)
    received = 0
    async for chunk in _body(request):
        received += len(chunk)
        yield chunk
    if declared is not None and received != declared:
        raise SizeInvalid(f"received {received} bytes but Content-Length said {declared}")


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def _blob_created(name: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


async def blob(ctx: RegistryContext, request: Request, m: Match) -> Response | ASGIApp:
    name = validate_name(m.name)
    if request.method == "DELETE":
        await ctx.blobs.unlink(name, m.reference)
        return Response(status_code=202)
    loc = await ctx.blobs.locate(name, m.reference)
    head = request.method == "HEAD"
    headers = {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": loc.digest,
        "ETag": f'"{loc.digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    if loc.redirect is not None and not head:
        return RedirectResponse(loc.redirect, status_code=307, headers={"Docker-Content-Digest": loc.digest})
    status, offset, length = 200, 0, loc.size
    range_header = request.headers.get("range")
    if range_header:
        try:
            span = parse_range(range_header, loc.size)
        except RangeInvalid as exc:  # RFC 9110 15.5.17: say what the range may cover
            return error_response(exc, headers={"Content-Range": f"bytes */{loc.size}"})
        if span is not None:
            status, offset, length = 206, span[0], span[1] - span[0] + 1
            headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{loc.size}"
    if loc.path is None:
        raise RuntimeError("blob store offers neither a local file nor a redirect")
    return BlobResponse(loc.path, status, headers, offset, length, head)


async def upload_start(ctx: RegistryContext, request: Request, m: Match) -> Response:
    name = validate_name(m.name)
    params = request.query_params
    mount, source, digest = params.get("mount"), params.get("from"), params.get("digest")
    # Mount only from a repository the caller may pull from; otherwise fall back to an upload.
    # A source name that is not a name at all is bad input, refused like any other.
    if (
        mount
        and source
        and await ctx.auth.may_pull(request.state.caller, validate_name(source))
        and await ctx.blobs.mount(name, mount, source)
    ):
        return _blob_created(name, mount)
    if digest:
        loc = await ctx.blobs.put_monolithic(name, digest, _checked_body(request))
        return _blob_created(name, loc.digest)
    upload_id = await ctx.blobs.start_upload(name)
    headers = _upload_headers(name, upload_id, 0)
    headers["Content-Length"] = "0"
    return Response(status_code=202, headers=headers)


async def upload(ctx: RegistryContext, request: Request, m: Match) -> Response:
    name = validate_name(m.name)
    upload_id = m.reference
    method = request.method
    if method == "GET":
        size = await ctx.blobs.upload_status(name, upload_id)
        return Response(status_code=204, headers=_upload_headers(name, upload_id, size))
    if method == "DELETE":
        await ctx.blobs.cancel(name, upload_id)
        return Response(status_code=204)
    if method == "PATCH":
        content_range = request.headers.get("content-range")
        span = parse_content_range(content_range) if content_range else None
        if span is not None:
            declared = _content_length(request)
            if declared is not None and declared != span[1] - span[0] + 1:
                raise BlobUploadInvalid(
                    f"Content-Range {content_range!r} does not match Content-Length {declared}"
                )
        size = await ctx.blobs.append(name, upload_id, _checked_body(request), span)
        return Response(status_code=202, headers=_upload_headers(name, upload_id, size))
    # PUT: complete the upload, with an optional last chunk.
    digest = request.query_params.get("digest")
    if not digest:
        raise BlobUploadInvalid("completing an upload needs ?digest=<digest>")
    length = _content_length(request)
    chunks = _checked_body(request) if length is None or length > 0 else None
    if request.headers.get("content-range") and chunks is not None:
        span = parse_content_range(request.headers["content-range"])
        current = await ctx.blobs.upload_status(name, upload_id)
        if span[0] != current:
            raise RangeInvalid(f"chunk starts at {span[0]} but the upload holds {current} bytes")
    loc = await ctx.blobs.complete(name, upload_id, digest, chunks)
    return _blob_created(name, loc.digest)
