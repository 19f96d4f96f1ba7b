"""The blob-store interface every storage driver implements.

A driver knows only digests and upload ids, never repositories: repository membership
("links") lives in the database. Every driver passes ``tests/storage/conformance.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from moorage.oci.digest import Hasher


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

    async def set_aside(self, digest: str) -> bool:
        """Move a blob out of sight, reversibly (garbage collection, before its row's deletion
        commits): ``stat``/``read`` no longer find it; ``False`` when it was not there."""
        ...

    async def restore_aside(self, digest: str) -> bool:
        """Put a blob set aside back (dropping the copy when the blob is there again, the same
        bytes by construction); ``False`` when nothing was set aside under ``digest``."""
        ...

    async def purge_aside(self, digest: str) -> None:
        """Delete a blob set aside for good; no error if it is gone."""
        ...

    def list_aside(self) -> AsyncIterator[str]:
        """Digests of the blobs set aside (left by an interrupted garbage collection)."""
        ...

    def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every blob the store holds (for garbage collection and rebuilding the index)."""
        ...

    async def warm_up(self) -> None:
        """Prepare for the first request (start threads, open connections); called once at a
        server worker's startup. Changes nothing stored."""
        ...

    async def close(self) -> None:
        """Let go of what this process prepared ahead (spare files, connections); called at a
        server's shutdown. Changes nothing stored, and the store still works afterwards."""
        ...

    async def upload_create(self, upload_id: str) -> None:
        """Start an empty upload session; an error if ``upload_id`` exists."""
        ...

    async def upload_append(
        self,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        limit: int | None = None,
        hasher: Hasher | None = None,
    ) -> int:
        """Append ``chunks`` to the upload; returns the new total size.

        ``limit`` bounds the total size: past it, ``UploadTooLarge`` is raised and the
        data appended by this call is truncated away again.

        ``hasher`` is updated with every byte appended, in order, wherever the driver
        handles the data (so hashing can leave the event loop with the write). After an
        error its state is undefined: the caller must rebuild it from ``upload_read``.
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

    def upload_list(self) -> AsyncIterator[tuple[str, float]]:
        """Every upload session with the POSIX time it was started or last appended to (for
        discarding idle ones)."""
        ...


class UploadTooLarge(Exception):
    """An upload grew past its size limit."""
