"""Filesystem blob store.

Layout under ``root`` (the only place that knows it)::

    blobs/<algorithm>/<first two hex chars>/<encoded>    committed blobs, immutable
    uploads/<upload id>                                  uploads in progress (append-only)
    tmp/                                                 temporary files of ``put``
    spare/<process>/<random>                             empty files made ahead for new uploads

Blobs are written elsewhere, flushed (``fsync`` when ``durable``) and renamed into place,
so a crash never leaves a partial file under a digest.

With ``durable`` writes, an upload streams through the page cache rather than filling it: each
buffer is handed to the disk as it is written (``sync_file_range``), the part a few MiB behind is
waited for and dropped from the cache (``POSIX_FADV_DONTNEED``), and a committed blob of
``_DROP_FROM`` bytes or more leaves the cache after its ``fsync``. Dirty pages never pile up for the
``fsync`` at commit, written-once layers do not evict what is read often, and the next upload
reuses the freed pages: on the VMs measured (bench/README.md), allocating fresh page-cache pages
cost ~2 ms per MiB, five times the copy itself. The first pull of such a blob reads it from disk.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import functools
import os
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from moorage.oci.digest import ALGORITHMS, Hasher, parse_digest
from moorage.storage.base import StoredBlob, UploadTooLarge
from moorage.storage.pipeline import Stage

_UPLOAD_ID_RE = re.compile(r"^[A-Za-z0-9-]{8,64}\Z")
_READ_CHUNK = 1 << 20
_WRITE_BUFFER = 1 << 20
#: A last partial buffer up to this size is hashed and written inline, not in a thread.
_INLINE_WRITE = 64 << 10
#: Most chunks in one buffer (``pwritev`` takes at most IOV_MAX, 1024, at once).
_MAX_PARTS = 512
#: Most bytes of an upload queued for (or in) its hash or its write: the event loop goes on
#: receiving while the threads work through them, each without waiting for the loop in between.
#: An upload holds at most this much plus the buffer filling. Measured with ``bench/cpucost.py``
#: (bench/README.md): with 2 MiB, 64 MiB blobs went up to 13% slower, 256 MiB in chunks up to 20%.
_IN_FLIGHT = 4 << 20
#: Reads up to this size run inline: a page-cache hit costs less than a hop to a thread.
_INLINE_READ = 64 << 10


def _load_sync_file_range() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return fn


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WAIT_BEFORE = 1
_SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE_WAIT_AFTER = 4
_SYNC_FILE_RANGE_SETTLE = _SYNC_FILE_RANGE_WAIT_BEFORE | _SYNC_FILE_RANGE_WRITE | _SYNC_FILE_RANGE_WAIT_AFTER
#: While an upload streams in, what lies this far behind its newest byte is waited for on disk
#: and dropped from the page cache (the writes in between are still on their way to disk).
_SETTLE_LAG = 4 << 20
#: A committed blob at least this large leaves the page cache once it is on disk; smaller ones
#: (configs, manifests, small layers) are often read again at once and cost little memory.
_DROP_FROM = 256 << 10
_PAGE = 4096
#: Empty files each process keeps made for the next uploads. Creating a file cost 0.2 ms of
#: system CPU on the VMs measured (ext4), renaming one 5 us: a new upload takes a spare file,
#: and the spares are made again while a commit waits for its ``fsync``, when nothing else runs.
_SPARES = 4
#: A process's spare files left this long untouched are removed by the next store to start
#: (their process is gone; a live one makes new spares when its own have vanished).
_SPARE_MAX_AGE = 3600.0
_T = TypeVar("_T")
_can_drop = hasattr(os, "posix_fadvise")


def _drop_cached(fd: int, offset: int, length: int) -> None:
    """Drop clean pages of ``fd`` in ``[offset, offset + length)`` (``length`` 0: to the end)."""
    if _can_drop:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _hash_parts(hasher: Hasher, parts: list[bytes]) -> None:
    for part in parts:
        hasher.update(part)


def _hash_item(hasher: Hasher, item: tuple[list[bytes], bool]) -> None:
    _hash_parts(hasher, item[0])


class _Writer:
    """Writes an upload's buffers one after the other from ``offset`` (in a writer thread)."""

    def __init__(self, fd: int, offset: int, settled: int) -> None:
        self.fd = fd
        self.offset = offset
        self.settled = settled

    def write(self, item: tuple[list[bytes], bool]) -> None:
        """``item``: the buffer's chunks, and whether to start flushing them (``_write_at``)."""
        parts, writeback = item
        self.settled = _write_at(self.fd, parts, self.offset, writeback, self.settled)
        self.offset += sum(len(part) for part in parts)


def _write_at(fd: int, parts: list[bytes], offset: int, writeback: bool, settled: int = 0) -> int:
    """Write ``parts`` one after the other at ``offset`` (one ``pwritev``, no joining copy).
    With ``writeback``, start flushing them to disk now (no waiting), and wait for and drop from
    the page cache what lies between ``settled`` and ``_SETTLE_LAG`` behind the end of this write
    (see the module's docstring).

    Returns the new ``settled`` offset. Runs in a writer thread (while another hashes the same
    buffer): ``pwritev`` and ``sync_file_range`` release the GIL, so the event loop goes on
    receiving the next buffer."""
    total = sum(len(part) for part in parts)
    views = [memoryview(part) for part in parts if part]
    position = offset
    while views:
        n = os.pwritev(fd, views, position)
        position += n
        while views and n >= len(views[0]):  # drop what was written; a short write resumes
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]
    if writeback and _sync_file_range is not None:
        _sync_file_range(fd, offset, total, _SYNC_FILE_RANGE_WRITE)
        settle_to = (offset + total - _SETTLE_LAG) // _PAGE * _PAGE
        if settle_to > settled:
            _sync_file_range(fd, settled, settle_to - settled, _SYNC_FILE_RANGE_SETTLE)
            _drop_cached(fd, settled, settle_to - settled)
            settled = settle_to
    return settled


class FilesystemBlobStore:
    """Blob store on a local (or network-mounted POSIX) filesystem."""

    def __init__(self, root: Path, durable: bool = True) -> None:
        self.root = root
        self._blobs_dir = str(root / "blobs")
        self.durable = durable
        # Upload hashing and writes run here while the event loop goes on receiving the body.
        # Two pools, not one for both: with one, the thread woken for a buffer's hash often took
        # its write too, after the hash (seen in timings of 1 MiB pushes: the write started
        # when the hash ended). On the 2-core VM measured, the write then runs slower beside
        # the hash and a 1 MiB PUT is no shorter (bench/README.md); more cores get the overlap.
        self._hashers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="moorage-blob-hash")
        self._writers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="moorage-blob-write")
        for sub in ("blobs", "uploads", "tmp", "spare"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._make_prefix_dirs()
        self._spare_dir = root / "spare" / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._spares: collections.deque[str] = collections.deque()
        self._making_spares = False
        _remove_abandoned_spares(root / "spare")

    def _make_prefix_dirs(self) -> None:
        """Create every ``blobs/<algorithm>/<two hex chars>`` directory up front (once).

        Made on demand instead, most early blobs would land in a new directory, and a durable
        commit would also flush its parent's entry: one ``mkdir`` and one ``fsync`` more per
        blob (measured on a 2-core VM: rename + directory flushes 0.38 ms into a new directory,
        0.17 ms into an existing one). ``_make_parents`` still covers a directory removed since.
        """
        blobs = self.root / "blobs"
        for algorithm in ALGORITHMS:
            base = blobs / algorithm
            if (base / "ff").is_dir():  # made last: the others are there too
                continue
            base.mkdir(exist_ok=True)
            for prefix in range(256):
                (base / f"{prefix:02x}").mkdir(exist_ok=True)
            if self.durable:
                _fsync_dir(base)
                _fsync_dir(blobs)

    async def warm_up(self) -> None:
        """Start a hashing and a writing thread now, not during the first upload; make the
        spare files for the first uploads."""
        for pool in (self._hashers, self._writers):
            await asyncio.wrap_future(pool.submit(int))
        self._making_spares = True
        await asyncio.wrap_future(self._hashers.submit(self._make_spares))

    async def close(self) -> None:
        """Remove this process's spare files (a spare being made meanwhile is left to the next
        store to start, see ``_SPARE_MAX_AGE``)."""
        while self._spares:
            with contextlib.suppress(OSError):
                os.unlink(self._spares.popleft())
        with contextlib.suppress(OSError):
            self._spare_dir.rmdir()

    # -- paths -------------------------------------------------------------------------
    def _blob_file(self, digest: str) -> str:
        d = parse_digest(digest)  # validates: no path tricks reach the filesystem
        # One string, not pathlib joins: this runs for every blob and manifest request.
        return f"{self._blobs_dir}/{d.algorithm}/{d.encoded[:2]}/{d.encoded}"

    def _blob_path(self, digest: str) -> Path:
        return Path(self._blob_file(digest))

    def _upload_path(self, upload_id: str) -> Path:
        if not _UPLOAD_ID_RE.match(upload_id):
            raise ValueError(f"invalid upload id {upload_id[:80]!r}")
        return self.root / "uploads" / upload_id

    # -- blobs -------------------------------------------------------------------------
    async def stat(self, digest: str) -> int | None:
        try:
            return os.stat(self._blob_file(digest)).st_size
        except FileNotFoundError:
            return None

    async def read(self, digest: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        async for chunk in _read_file(self._blob_file(digest), offset, length):
            yield chunk

    def local_path(self, digest: str) -> Path | None:
        return self._blob_path(digest)

    async def redirect_url(self, digest: str) -> str | None:
        return None

    async def put(self, digest: str, data: bytes) -> None:
        target = self._blob_path(digest)
        if target.exists():
            return

        def write() -> None:
            fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    if self.durable:
                        os.fsync(fh.fileno())
                self._install(Path(tmp), target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

        await anyio.to_thread.run_sync(write)

    def _install(self, source: Path, target: Path) -> None:
        created = _make_parents(target)
        os.replace(source, target)
        self._persist_entry(target, created)

    def _persist_entry(self, target: Path, created: list[Path]) -> None:
        """When durable, flush ``target``'s directory entry, and those of the directories
        (``created``: a new digest prefix, a new algorithm) made for it: fsync of a directory
        covers its entries, not its own name."""
        if self.durable:
            for path in [target.parent, *(made.parent for made in created)]:
                _fsync_dir(path)

    async def delete(self, digest: str) -> bool:
        try:
            self._blob_path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    # -- set aside (garbage collection) ---------------------------------------------------
    def _aside_path(self, digest: str) -> Path:
        d = parse_digest(digest)
        return self.root / "gc" / d.algorithm / d.encoded

    async def set_aside(self, digest: str) -> bool:
        source, target = self._blob_path(digest), self._aside_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            return False
        return True

    async def restore_aside(self, digest: str) -> bool:
        source, target = self._aside_path(digest), self._blob_path(digest)
        if not source.exists():
            return False
        if target.exists():  # stored again meanwhile: the same bytes
            source.unlink(missing_ok=True)
            return True
        created = _make_parents(target)
        try:
            os.link(source, target)  # never replaces a blob stored meanwhile
        except FileExistsError:
            pass
        except FileNotFoundError:
            return False
        self._persist_entry(target, created)  # back for good before the aside copy goes
        source.unlink(missing_ok=True)
        return True

    async def purge_aside(self, digest: str) -> None:
        self._aside_path(digest).unlink(missing_ok=True)

    async def list_aside(self) -> AsyncIterator[str]:
        base = self.root / "gc"
        if not base.is_dir():
            return
        for alg_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for entry in sorted(alg_dir.iterdir()):
                yield f"{alg_dir.name}:{entry.name}"

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        base = self.root / "blobs"
        for alg_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for prefix in sorted(p for p in alg_dir.iterdir() if p.is_dir()):
                for entry in sorted(prefix.iterdir()):
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    yield StoredBlob(f"{alg_dir.name}:{entry.name}", st.st_size, st.st_mtime)

    # -- uploads -----------------------------------------------------------------------
    async def upload_create(self, upload_id: str) -> None:
        target = self._upload_path(upload_id)
        while self._spares:
            spare = self._spares.popleft()
            try:
                os.link(spare, target)  # refuses an existing upload, as creating would
            except FileNotFoundError:  # removed as abandoned (a long idle process): the next
                continue
            except BaseException:
                self._spares.appendleft(spare)  # still spare
                raise
            os.unlink(spare)
            os.utime(target)  # started now, not when the spare was made (expiry goes by it)
            return
        target.touch(exist_ok=False)
        self._make_spares_soon()

    def _make_spares_soon(self) -> None:
        """Make the spare files up to ``_SPARES`` again, in a thread, unless that is under way."""
        if not self._making_spares and len(self._spares) < _SPARES:
            self._making_spares = True
            self._hashers.submit(self._make_spares)

    def _make_spares(self) -> None:
        """(In a thread.) Errors are not raised: an upload then creates its own file."""
        try:
            self._spare_dir.mkdir(parents=True, exist_ok=True)
            while len(self._spares) < _SPARES:
                path = f"{self._spare_dir}/{uuid.uuid4().hex}"
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                self._spares.append(path)
        except OSError:
            pass
        finally:
            self._making_spares = False

    async def upload_append(
        self,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        limit: int | None = None,
        hasher: Hasher | None = None,
    ) -> int:
        path = self._upload_path(upload_id)
        if not path.exists():
            raise FileNotFoundError(upload_id)
        fd = os.open(path, os.O_WRONLY)
        try:
            start = size = os.lseek(fd, 0, os.SEEK_END)
            # What an earlier append left unsettled lies at most _SETTLE_LAG behind: see _write_at.
            writer = _Writer(fd, start, max(0, start - _SETTLE_LAG) // _PAGE * _PAGE)
            # The chunks as received (no copying on the event loop), in buffers of about
            # _WRITE_BUFFER bytes, hashed in one thread and written in another (each costs about
            # as much as receiving them) while the next buffers arrive; each stage takes its
            # buffers in order, so the hasher sees the bytes in order.
            stages: list[Stage[Any]] = (
                [] if hasher is None else [Stage(self._hashers, functools.partial(_hash_item, hasher))]
            )
            stages.append(Stage(self._writers, writer.write))
            buffer: list[bytes] = []
            buffered = 0
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise UploadTooLarge(f"upload exceeds the limit of {limit} bytes")
                    buffer.append(chunk)
                    buffered += len(chunk)
                    if buffered >= _WRITE_BUFFER or len(buffer) >= _MAX_PARTS:
                        await _queue(stages, buffer, buffered, self.durable)
                        buffer, buffered = [], 0
                # The last part of the body: one small enough goes inline, unless buffers before
                # it are still being worked on; its flush is left to the commit's fsync.
                if buffered > _INLINE_WRITE or (buffered and any(stage.held for stage in stages)):
                    await _queue(stages, buffer, buffered, False)
                elif buffered:
                    if hasher is not None:
                        _hash_parts(hasher, buffer)
                    writer.write((buffer, False))
                for stage in stages:
                    await stage.wait_until_at_most(0)
            except BaseException:
                # A broken or refused chunk leaves the upload as it was before this call.
                for stage in stages:
                    stage.abandon()  # so that nothing lands after the truncate
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        return size

    async def upload_size(self, upload_id: str) -> int | None:
        try:
            return self._upload_path(upload_id).stat().st_size
        except (FileNotFoundError, ValueError):
            return None

    async def upload_read(self, upload_id: str) -> AsyncIterator[bytes]:
        async for chunk in _read_file(self._upload_path(upload_id), 0, None):
            yield chunk

    async def upload_commit(self, upload_id: str, digest: str) -> None:
        source = self._upload_path(upload_id)
        target = self._blob_path(digest)

        def commit() -> None:
            if self.durable:
                fd = os.open(source, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    if os.fstat(fd).st_size >= _DROP_FROM:
                        _drop_cached(fd, 0, 0)  # clean now: see the module's docstring
                finally:
                    os.close(fd)
            self._install(source, target)

        # In a writer thread, warm from this upload's last write: anyio's worker hand-off cost
        # 0.2 ms per commit here, a tenth of a 1 MiB push's time in the server.
        running = self._writers.submit(commit)
        self._make_spares_soon()  # while the commit waits for the disk
        await _wait_to_end(running)

    async def upload_delete(self, upload_id: str) -> None:
        try:
            self._upload_path(upload_id).unlink(missing_ok=True)
        except ValueError:
            return

    async def upload_list(self) -> AsyncIterator[tuple[str, float]]:
        for entry in (self.root / "uploads").iterdir():
            try:
                yield entry.name, entry.stat().st_mtime
            except FileNotFoundError:
                continue


def _make_parents(target: Path) -> list[Path]:
    """Create ``target``'s directory as needed; the directories created, deepest first."""
    created = []
    directory = target.parent
    while not directory.is_dir():  # one stat when the directory is there (nearly always)
        created.append(directory)
        directory = directory.parent
    if created:
        target.parent.mkdir(parents=True, exist_ok=True)
    return created


def _remove_abandoned_spares(base: Path) -> None:
    """Remove the spare files of processes gone (see ``_SPARE_MAX_AGE``)."""
    cutoff = time.time() - _SPARE_MAX_AGE
    for directory in base.iterdir():
        try:
            if directory.stat().st_mtime >= cutoff:
                continue
            for entry in directory.iterdir():
                entry.unlink(missing_ok=True)
            directory.rmdir()
        except OSError:  # another process removes it too, or uses it again
            continue


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _wait_to_end(running: Future[_T]) -> _T:
    """The result of work running in a thread. A cancelled caller still waits for it to end,
    then raises the cancellation (as ``anyio.to_thread.run_sync`` does): the caller's cleanup
    never runs while the thread is still changing files."""
    future = asyncio.wrap_future(running)
    cancelled: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled
    return future.result()


async def _queue(stages: list[Stage[Any]], parts: list[bytes], size: int, writeback: bool) -> None:
    """Hand a buffer to every stage, once each holds at most what lets it in (``_IN_FLIGHT``)."""
    for stage in stages:
        # A buffer larger than _IN_FLIGHT (one huge chunk) waits until the stage is empty.
        await stage.wait_until_at_most(_IN_FLIGHT - size)
    item = (parts, writeback)
    for stage in stages:
        stage.put(item, size)


async def _read_file(path: str | Path, offset: int, length: int | None) -> AsyncIterator[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        remaining = length if length is not None else os.fstat(fd).st_size - offset
        position = offset
        while remaining > 0:
            n = min(_READ_CHUNK, remaining)
            if n <= _INLINE_READ:
                chunk = os.pread(fd, n, position)
            else:
                chunk = await anyio.to_thread.run_sync(os.pread, fd, n, position)
            if not chunk:
                break
            position += len(chunk)
            remaining -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
