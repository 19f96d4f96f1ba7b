"""Blobs: pulling, uploading (monolithic, chunked, streamed), mounting and unlinking.

Upload hash state lives in this process's memory keyed by upload id and offset. When it
is missing or stale (after a restart, or when another process took a chunk), it is
rebuilt by reading back what the upload holds, so uploads survive restarts and can be
spread over several processes.

An upload's repository never changes, so a process remembers it for the uploads it started
or has seen (no database read per chunk); whether the upload still exists is the store's to
say (its bytes go when it is completed, cancelled or expired, by whichever process).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import content as q
from moorage.db.engine import Database
from moorage.db.gc import hold_references as gc_fence
from moorage.oci.digest import Digest, Hasher, new_hasher, parse_digest
from moorage.oci.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    PayloadTooLarge,
    RangeInvalid,
)
from moorage.oci.reference import validate_name
from moorage.services.clock import Clock
from moorage.storage.base import BlobStore, UploadTooLarge

_HASH_ALGORITHM = "sha256"


class _RollBack(Exception):
    """Ends a transaction with a rollback (``BlobService.warm_up``)."""


@dataclass(frozen=True, slots=True)
class BlobLocation:
    digest: str
    size: int
    path: Path | None  # a local file, when the store has one
    redirect: str | None  # a URL the client may fetch from instead


@dataclass
class BlobService:
    db: Database
    store: BlobStore
    clock: Clock
    max_upload_size: int
    #: runs in the transaction that creates a repository implicitly, on push (``REPO_CREATED``)
    on_repository_created: Callable[[AsyncConnection, str], Awaitable[None]] | None = None
    #: upload id -> (bytes hashed, hash state) of the uploads this process is taking
    _hash_states: dict[str, tuple[int, Hasher]] = field(default_factory=dict)
    #: upload id -> repository, for the uploads this process started or has looked up
    _owners: dict[str, str] = field(default_factory=dict)

    # -- pull ---------------------------------------------------------------------------
    async def locate(self, repository: str, digest: str) -> BlobLocation:
        parse_digest(digest)
        async with self.db.read() as conn:
            size = await q.linked_blob_size(conn, repository, digest)
        if size is None:
            raise BlobUnknown(f"blob {digest} is not in repository {repository!r}", {"digest": digest})
        return BlobLocation(
            digest, size, self.store.local_path(digest), await self.store.redirect_url(digest)
        )

    def read(self, digest: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return self.store.read(digest, offset, length)

    async def unlink(self, repository: str, digest: str) -> None:
        """Remove a blob from a repository. The bytes stay until garbage collection."""
        parse_digest(digest)
        async with self.db.write() as conn:
            rid = await q.repository_id(conn, repository)
            if rid is None or not await q.unlink_blob(conn, rid, digest):
                raise BlobUnknown(f"blob {digest} is not in repository {repository!r}", {"digest": digest})

    # -- mount --------------------------------------------------------------------------
    async def mount(self, repository: str, digest: str, source: str) -> bool:
        """Link a blob of ``source`` into ``repository``; ``False`` when ``source`` lacks it."""
        validate_name(source)
        parse_digest(digest)
        async with self.db.write() as conn:
            await gc_fence(conn)
            if await q.linked_blob_size(conn, source, digest) is None:
                return False
            rid = await q.ensure_repository(
                conn, validate_name(repository), self.clock(), on_created=self.on_repository_created
            )
            await q.link_blob(conn, rid, digest, self.clock())
        return True

    # -- uploads ------------------------------------------------------------------------
    async def start_upload(self, repository: str) -> str:
        upload_id = str(uuid.uuid4())
        await self.store.upload_create(upload_id)
        async with self.db.write() as conn:
            await q.create_upload(conn, upload_id, validate_name(repository), self.clock())
        self._hash_states[upload_id] = (0, new_hasher(_HASH_ALGORITHM))
        self._owners[upload_id] = repository
        return upload_id

    async def _check_upload(self, repository: str, upload_id: str) -> int:
        """Current size of an upload of ``repository``; ``BlobUploadUnknown`` otherwise."""
        owner = self._owners.get(upload_id)
        if owner is None:
            async with self.db.read() as conn:
                owner = await q.upload_repository(conn, upload_id)
            if owner is not None:
                self._owners[upload_id] = owner
        size = await self.store.upload_size(upload_id) if owner is not None else None
        if owner != repository or size is None:
            raise BlobUploadUnknown(f"upload {upload_id[:80]!r} is not known in repository {repository!r}")
        return size

    async def upload_status(self, repository: str, upload_id: str) -> int:
        return await self._check_upload(repository, upload_id)

    async def _hash_state(self, upload_id: str, size: int) -> Hasher:
        state = self._hash_states.get(upload_id)
        if state is not None and state[0] == size:
            return state[1]
        return await self._rehash(upload_id, _HASH_ALGORITHM)

    async def _rehash(self, upload_id: str, algorithm: str) -> Hasher:
        """Hash what the upload holds, in a thread: a large upload would stall the event loop."""
        hasher = new_hasher(algorithm)
        async for chunk in self.store.upload_read(upload_id):
            await anyio.to_thread.run_sync(hasher.update, chunk)
        return hasher

    async def _append(self, upload_id: str, size: int, chunks: AsyncIterable[bytes]) -> int:
        hasher = await self._hash_state(upload_id, size)
        self._hash_states.pop(upload_id, None)  # invalid until this append finishes
        try:
            # The store hashes in its writer thread, with the write: not on the event loop.
            new_size = await self.store.upload_append(upload_id, chunks, self.max_upload_size, hasher)
        except UploadTooLarge:
            raise PayloadTooLarge(
                f"blob exceeds the registry's upload limit of {self.max_upload_size} bytes",
                {"limit": self.max_upload_size},
            ) from None
        self._hash_states[upload_id] = (new_size, hasher)
        return new_size

    async def append(
        self,
        repository: str,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        content_range: tuple[int, int] | None,
    ) -> int:
        """Append a chunk; ``content_range`` (inclusive) must start where the upload ends."""
        size = await self._check_upload(repository, upload_id)
        if content_range is not None and content_range[0] != size:
            raise RangeInvalid(
                f"chunk starts at {content_range[0]} but the upload holds {size} bytes; "
                f"send the chunk starting at {size}",
                {"size": size},
            )
        new_size = await self._append(upload_id, size, chunks)
        async with self.db.write() as conn:
            await q.touch_upload(conn, upload_id, self.clock())
        return new_size

    async def complete(
        self, repository: str, upload_id: str, digest: str, chunks: AsyncIterable[bytes] | None
    ) -> BlobLocation:
        """Finish an upload with an optional last chunk, verify ``digest`` and publish the blob."""
        expected = parse_digest(digest)
        size = await self._check_upload(repository, upload_id)
        if chunks is not None:
            size = await self._append(upload_id, size, chunks)
        actual = await self._final_digest(upload_id, size, expected)
        if actual != expected:
            await self._discard(upload_id)
            raise DigestInvalid(
                f"digest mismatch: the upload's content is {actual}, not {expected}",
                {"expected": str(expected), "actual": str(actual)},
            )
        await self._publish(repository, upload_id, str(expected), size)
        return BlobLocation(str(expected), size, None, None)

    async def _final_digest(self, upload_id: str, size: int, expected: Digest) -> Digest:
        if expected.algorithm == _HASH_ALGORITHM:
            hasher = await self._hash_state(upload_id, size)
        else:
            hasher = await self._rehash(upload_id, expected.algorithm)
        return Digest(expected.algorithm, hasher.hexdigest())

    def _forget(self, upload_id: str) -> None:
        self._hash_states.pop(upload_id, None)
        self._owners.pop(upload_id, None)

    async def _publish(self, repository: str, upload_id: str, digest: str, size: int) -> None:
        self._forget(upload_id)
        installed = await self.store.stat(digest) is None
        if installed:  # outside the transaction: the commit may fsync a large file
            await self.store.upload_commit(upload_id, digest)
        now = self.clock()
        async with self.db.write() as conn:
            # Under the GC fence the file cannot go while the row is being recorded: check it is
            # (still) there; garbage collection may have removed it since (services/gc.py).
            await gc_fence(conn)
            if await self.store.stat(digest) is None:
                if installed:
                    raise BlobUploadInvalid(
                        f"blob {digest} was removed by garbage collection while being stored: upload it again"
                    )
                await self.store.upload_commit(upload_id, digest)
                installed = True
            await q.record_blob(conn, digest, size, now)
            rid = await q.ensure_repository(conn, repository, now, on_created=self.on_repository_created)
            await q.link_blob(conn, rid, digest, now)
            await q.delete_upload(conn, upload_id)
        if not installed:
            await self.store.upload_delete(upload_id)

    async def _discard(self, upload_id: str) -> None:
        self._forget(upload_id)
        await self.store.upload_delete(upload_id)
        async with self.db.write() as conn:
            await q.delete_upload(conn, upload_id)

    async def warm_up(self, repository: str, digest: str) -> None:
        """Run an upload's statements once in a transaction that is rolled back, so that the
        first real upload finds them compiled; nothing is written. ``digest``: one no content
        has (``moorage.warmup``)."""
        now = self.clock()
        try:
            async with self.db.write() as conn:
                upload_id = str(uuid.uuid4())
                await q.create_upload(conn, upload_id, repository, now)
                await q.upload_repository(conn, upload_id)
                await q.record_blob(conn, digest, 0, now)
                # No on_created: a repository-created event would be recorded, even if rolled back.
                rid = await q.ensure_repository(conn, repository, now)
                await q.link_blob(conn, rid, digest, now)
                await q.delete_upload(conn, upload_id)
                raise _RollBack
        except _RollBack:
            pass

    async def expire_uploads(self, max_age: dt.timedelta) -> int:
        """Discard uploads idle for longer than ``max_age``; returns how many."""
        async with self.db.read() as conn:
            stale = await q.stale_uploads(conn, self.clock() - max_age)
        for upload_id in stale:
            await self._discard(upload_id)
        # What this process remembers of uploads that another process ended.
        for upload_id in list(self._owners.keys() | self._hash_states.keys()):
            if await self.store.upload_size(upload_id) is None:
                self._forget(upload_id)
        return len(stale)

    async def cancel(self, repository: str, upload_id: str) -> None:
        await self._check_upload(repository, upload_id)
        await self._discard(upload_id)

    async def put_monolithic(
        self, repository: str, digest: str, chunks: AsyncIterable[bytes]
    ) -> BlobLocation:
        """POST with ``?digest=``: the whole blob in one request."""
        parse_digest(digest)
        validate_name(repository)
        upload_id = await self.start_upload(repository)
        try:
            return await self.complete(repository, upload_id, digest, chunks)
        except BaseException:
            await self._discard(upload_id)
            raise

    async def put_small(self, repository: str, data: bytes) -> str:
        """Store a small blob given in memory (used by tools and tests); returns its digest."""
        hasher = new_hasher(_HASH_ALGORITHM)
        hasher.update(data)
        digest = f"{_HASH_ALGORITHM}:{hasher.hexdigest()}"
        now = self.clock()
        async with self.db.write() as conn:
            await gc_fence(conn)
            await self.store.put(digest, data)  # a no-op when present; under the fence (services/gc.py)
            await q.record_blob(conn, digest, len(data), now)
            rid = await q.ensure_repository(
                conn, validate_name(repository), now, on_created=self.on_repository_created
            )
            await q.link_blob(conn, rid, digest, now)
        return digest

    async def read_small(self, digest: str, limit: int) -> bytes | None:
        """The whole blob if it is at most ``limit`` bytes (configs), else ``None``."""
        size = await self.store.stat(digest)
        if size is None or size > limit:
            return None
        return b"".join([chunk async for chunk in self.store.read(digest)])
