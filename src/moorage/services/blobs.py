"""Blobs: pulling, uploading (monolithic, chunked, streamed), mounting and unlinking.

An upload lives in the blob store alone, under a name made of the id the client is given and
a hash of its repository's name (``_store_upload_id``): the upload ``U`` of ``lab/a`` is not
found when asked for as ``U`` of ``lab/b``, so no record says whose an upload is, and starting
or appending to one writes nothing to the database. Whether an upload exists, and when it was
last written (for expiry), is the store's to say, whichever process ended or touched it.

Upload hash state lives in this process's memory keyed by upload and offset. When it is
missing or stale (after a restart, or when another process took a chunk), it is rebuilt by
reading back what the upload holds, so uploads survive restarts and can be spread over
several processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
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
#: The upload ids this service hands out (``uuid4``); anything else is an unknown upload.
_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _store_upload_id(repository: str, upload_id: str) -> str:
    """The store's name of upload ``upload_id`` of ``repository`` (see the module's docstring).
    96 bits of the name's sha256: finding another name with the same ones is out of reach."""
    return f"{upload_id}-{hashlib.sha256(repository.encode()).hexdigest()[:24]}"


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
    #: store upload id -> (bytes hashed, hash state) of the uploads this process is taking
    _hash_states: dict[str, tuple[int, Hasher]] = field(default_factory=dict)

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
        stored = _store_upload_id(validate_name(repository), upload_id)
        await self.store.upload_create(stored)
        self._hash_states[stored] = (0, new_hasher(_HASH_ALGORITHM))
        return upload_id

    async def _check_upload(self, repository: str, upload_id: str) -> tuple[str, int]:
        """The store's id and the current size of an upload of ``repository``;
        ``BlobUploadUnknown`` otherwise."""
        stored = _store_upload_id(repository, upload_id) if _UPLOAD_ID.fullmatch(upload_id) else None
        size = await self.store.upload_size(stored) if stored is not None else None
        if stored is None or size is None:
            raise BlobUploadUnknown(f"upload {upload_id[:80]!r} is not known in repository {repository!r}")
        return stored, size

    async def upload_status(self, repository: str, upload_id: str) -> int:
        return (await self._check_upload(repository, upload_id))[1]

    async def _hash_state(self, stored: str, size: int) -> Hasher:
        state = self._hash_states.get(stored)
        if state is not None and state[0] == size:
            return state[1]
        return await self._rehash(stored, _HASH_ALGORITHM)

    async def _rehash(self, stored: str, algorithm: str) -> Hasher:
        """Hash what the upload holds, in a thread: a large upload would stall the event loop."""
        hasher = new_hasher(algorithm)
        async for chunk in self.store.upload_read(stored):
            await anyio.to_thread.run_sync(hasher.update, chunk)
        return hasher

    async def _append(self, stored: str, size: int, chunks: AsyncIterable[bytes]) -> int:
        hasher = await self._hash_state(stored, size)
        self._hash_states.pop(stored, None)  # invalid until this append finishes
        try:
            # The store hashes in its writer thread, with the write: not on the event loop.
            new_size = await self.store.upload_append(stored, chunks, self.max_upload_size, hasher)
        except UploadTooLarge:
            raise PayloadTooLarge(
                f"blob exceeds the registry's upload limit of {self.max_upload_size} bytes",
                {"limit": self.max_upload_size},
            ) from None
        self._hash_states[stored] = (new_size, hasher)
        return new_size

    async def append(
        self,
        repository: str,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        content_range: tuple[int, int] | None,
    ) -> int:
        """Append a chunk; ``content_range`` (inclusive) must start where the upload ends."""
        stored, size = await self._check_upload(repository, upload_id)
        if content_range is not None and content_range[0] != size:
            raise RangeInvalid(
                f"chunk starts at {content_range[0]} but the upload holds {size} bytes; "
                f"send the chunk starting at {size}",
                {"size": size},
            )
        return await self._append(stored, size, chunks)

    async def complete(
        self, repository: str, upload_id: str, digest: str, chunks: AsyncIterable[bytes] | None
    ) -> BlobLocation:
        """Finish an upload with an optional last chunk, verify ``digest`` and publish the blob."""
        expected = parse_digest(digest)
        stored, size = await self._check_upload(repository, upload_id)
        if chunks is not None:
            size = await self._append(stored, size, chunks)
        actual = await self._final_digest(stored, size, expected)
        if actual != expected:
            await self._discard(stored)
            raise DigestInvalid(
                f"digest mismatch: the upload's content is {actual}, not {expected}",
                {"expected": str(expected), "actual": str(actual)},
            )
        await self._publish(repository, stored, str(expected), size)
        return BlobLocation(str(expected), size, None, None)

    async def _final_digest(self, stored: str, size: int, expected: Digest) -> Digest:
        if expected.algorithm == _HASH_ALGORITHM:
            hasher = await self._hash_state(stored, size)
        else:
            hasher = await self._rehash(stored, expected.algorithm)
        return Digest(expected.algorithm, hasher.hexdigest())

    async def _publish(self, repository: str, stored: str, digest: str, size: int) -> None:
        self._hash_states.pop(stored, None)
        installed = await self.store.stat(digest) is None
        if installed:  # outside the transaction: the commit may fsync a large file
            await self.store.upload_commit(stored, digest)
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
                await self.store.upload_commit(stored, digest)
                installed = True
            await q.record_blob(conn, digest, size, now)
            rid = await q.ensure_repository(conn, repository, now, on_created=self.on_repository_created)
            await q.link_blob(conn, rid, digest, now)
        if not installed:
            await self.store.upload_delete(stored)

    async def _discard(self, stored: str) -> None:
        self._hash_states.pop(stored, None)
        await self.store.upload_delete(stored)

    async def warm_up(self, repository: str, digest: str) -> None:
        """Run an upload's statements once in a transaction that is rolled back, so that the
        first real upload finds them compiled; nothing is written. ``digest``: one no content
        has (``moorage.warmup``)."""
        now = self.clock()
        try:
            async with self.db.write() as conn:
                await q.record_blob(conn, digest, 0, now)
                # No on_created: a repository-created event would be recorded, even if rolled back.
                rid = await q.ensure_repository(conn, repository, now)
                await q.link_blob(conn, rid, digest, now)
                raise _RollBack
        except _RollBack:
            pass

    async def expire_uploads(self, max_age: dt.timedelta) -> int:
        """Discard uploads not written to for longer than ``max_age``; returns how many."""
        cutoff = time.time() - max_age.total_seconds()
        stale = [stored async for stored, written in self.store.upload_list() if written < cutoff]
        for stored in stale:
            await self._discard(stored)
        # Hash states of uploads that another process ended.
        for stored in list(self._hash_states):
            if await self.store.upload_size(stored) is None:
                self._hash_states.pop(stored, None)
        return len(stale)

    async def cancel(self, repository: str, upload_id: str) -> None:
        stored, _ = await self._check_upload(repository, upload_id)
        await self._discard(stored)

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
            await self._discard(_store_upload_id(repository, upload_id))
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
