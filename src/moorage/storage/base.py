"""The blob-store interface every storage driver implements.

A driver knows only digests and upload ids, never repositories: repository membership
("links") lives in the database. Every driver passes ``tests/storage/conformance.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: str
    size: int
    modified: float  # POSIX time the blob was written


class BlobStore(Protocol):
    """Content-addressed blob storage plus resumable upload sessions."""

    async def stat(self, digest: str) -> int | None:
        """Size of the blob, or ``None`` when the store does not hold it."""
        ...

    def read(self, digest: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (all when ``None``) from ``offset``; raises ``FileNotFoundError``."""
        ...

    def local_path(self, digest: str) -> Path | None:
        """A local file holding the blob, for zero-copy serving; ``None`` if the driver has none."""
        ...

    async def redirect_url(self, digest: str) -> str | None:
        """A URL clients may fetch the blob from directly (presigned), or ``None``."""
        ...

    async def put(self, digest: str, data: bytes) -> None:
        """Store small content whose digest the caller has verified. Atomic; idempotent."""
        ...

    async def delete(self, digest: str) -> bool:
        """Remove a blob; ``False`` when it was not there."""
        ...

    def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every blob the store holds (for garbage collection and rebuilding the index)."""
        ...

    async def upload_create(self, upload_id: str) -> None:
        """Start an empty upload session."""
        ...

    async def upload_append(
        self, upload_id: str, chunks: AsyncIterable[bytes], limit: int | None = None
    ) -> int:
        """Append ``chunks`` to the upload; returns the new total size.

        ``limit`` bounds the total size: past it, ``UploadTooLarge`` is raised and the
        data appended by this call is truncated away again.
        """
        ...

    async def upload_size(self, upload_id: str) -> int | None:
        """Bytes received so far, or ``None`` for an unknown upload."""
        ...

    def upload_read(self, upload_id: str) -> AsyncIterator[bytes]:
        """Stream what the upload holds so far (to rebuild hash state after a restart)."""
        ...

    async def upload_commit(self, upload_id: str, digest: str) -> None:
        """Make the upload's bytes the blob ``digest`` atomically (the caller verified the digest)."""
        ...

    async def upload_delete(self, upload_id: str) -> None:
        """Discard an upload session; no error if it is gone."""
        ...


class UploadTooLarge(Exception):
    """An upload grew past its size limit."""
