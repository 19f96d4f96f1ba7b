"""The one mapping from typed registry errors to HTTP status and the spec's JSON envelope."""

from __future__ import annotations

import json

from starlette.responses import Response

from moorage.oci import errors as e

# Looked up along the exception's MRO, so a subclass can have its own status.
_STATUS: dict[type[e.RegistryError], int] = {
    e.BlobUnknown: 404,
    e.BlobUploadInvalid: 400,
    e.BlobUploadUnknown: 404,
    e.DigestInvalid: 400,
    e.ManifestBlobUnknown: 400,
    e.ManifestInvalid: 400,
    e.ManifestUnknown: 404,
    e.NameInvalid: 400,
    e.NameUnknown: 404,
    e.SizeInvalid: 400,
    e.PayloadTooLarge: 413,
    e.TagInvalid: 400,
    e.TagImmutable: 403,
    e.Unauthorized: 401,
    e.Denied: 403,
    e.Unsupported: 400,
    e.TooManyRequests: 429,
    e.RangeInvalid: 416,
    e.PaginationInvalid: 400,
    e.RegistryError: 500,
}

# Codes outside the spec's list are reported with the nearest spec code.
_WIRE_CODE = {
    "RANGE_INVALID": "BLOB_UPLOAD_INVALID",
    "TAG_INVALID": "MANIFEST_INVALID",
    "PAGINATION_NUMBER_INVALID": "UNSUPPORTED",
}


def status_for(exc: e.RegistryError) -> int:
    for cls in type(exc).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_body(code: str, message: str, detail: object = None) -> bytes:
    entry: dict[str, object] = {"code": _WIRE_CODE.get(code, code), "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode()


def error_response(
    exc: e.RegistryError, headers: dict[str, str] | None = None, status: int | None = None
) -> Response:
    return Response(
        error_body(exc.code, exc.message, exc.detail),
        status_code=status or status_for(exc),
        media_type="application/json",
        headers=headers,
    )
