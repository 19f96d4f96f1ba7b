"""Typed registry errors carrying the OCI distribution-spec error codes.

Services raise these; each face maps them to its own wire format in one place
(``moorage.registry.errors`` for ``/v2/``).
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """Base of every error a client can be told about. ``code`` is the OCI error code."""

    code: str = "UNKNOWN"

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"


class BlobUploadInvalid(RegistryError):
    code = "BLOB_UPLOAD_INVALID"


class BlobUploadUnknown(RegistryError):
    code = "BLOB_UPLOAD_UNKNOWN"


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"


class ManifestBlobUnknown(RegistryError):
    code = "MANIFEST_BLOB_UNKNOWN"


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"


class NameInvalid(RegistryError):
    code = "NAME_INVALID"


class NameUnknown(RegistryError):
    code = "NAME_UNKNOWN"


class SizeInvalid(RegistryError):
    code = "SIZE_INVALID"


class TagInvalid(RegistryError):
    code = "TAG_INVALID"


class TagImmutable(RegistryError):
    """Pushing over an existing tag in a repository whose tags are immutable."""

    code = "DENIED"


class Unauthorized(RegistryError):
    code = "UNAUTHORIZED"


class Denied(RegistryError):
    code = "DENIED"


class Unsupported(RegistryError):
    code = "UNSUPPORTED"


class TooManyRequests(RegistryError):
    code = "TOOMANYREQUESTS"


class RangeInvalid(RegistryError):
    """A ``Range`` or ``Content-Range`` the resource cannot satisfy (HTTP 416)."""

    code = "RANGE_INVALID"


class PayloadTooLarge(RegistryError):
    """A manifest or blob larger than the configured limit."""

    code = "SIZE_INVALID"


class PaginationInvalid(RegistryError):
    code = "PAGINATION_NUMBER_INVALID"
