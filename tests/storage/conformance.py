"""The conformance suite every ``BlobStore`` driver passes.

A driver's test module subclasses :class:`BlobStoreConformance` and provides a ``store``
fixture returning a fresh, empty store::

    class TestMyDriver(BlobStoreConformance):
        @pytest.fixture
        def store(self, tmp_path): return MyDriver(...)

Only the ``BlobStore`` protocol (``moorage.storage.base``) is used here, so the same
tests hold for the filesystem, S3 or any later driver.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable

import pytest

from moorage.oci.errors import RegistryError
from moorage.storage.base import BlobStore, StoredBlob, UploadTooLarge


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


async def chunks_of(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def failing_after(parts: Iterable[bytes], error: BaseException) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    raise error


async def read_all(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in it])


def new_upload_id() -> str:
    return str(uuid.uuid4())


#: Digests no driver may accept, however it maps them to keys or paths.
INVALID_DIGESTS = [
    "",
    "sha256",
    "sha256:../../../../etc/passwd",
    "sha256:" + "a" * 63,
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 64 + "\n",
    "../sha256:" + "a" * 64,
    "sha256/../../x:" + "a" * 64,
    "md5:" + "a" * 32,
]

#: Upload ids no driver may accept.
INVALID_UPLOAD_IDS = [
    "",
    "..",
    "../../etc/passwd",
    "a/b/c/d/e/f/g",
    "abc",
    "x" * 65,
    "abcdefgh\n",
    "abcd efgh",
    "%2e%2e%2fx",
]

BLOB = b"The quick brown fox jumps over the lazy dog" * 100


class BlobStoreConformance:
    """Behaviour every blob-store driver must show."""

    @pytest.fixture
    def store(self) -> BlobStore:
        raise NotImplementedError("a driver's test class provides the store fixture")

    # -- blobs -----------------------------------------------------------------------
    async def test_missing_blob(self, store: BlobStore) -> None:
        digest = sha256(b"absent")
        assert await store.stat(digest) is None
        with pytest.raises(FileNotFoundError):
            await read_all(store.read(digest))
        assert await store.delete(digest) is False

    async def test_put_stat_read(self, store: BlobStore) -> None:
        digest = sha256(BLOB)
        await store.put(digest, BLOB)
        assert await store.stat(digest) == len(BLOB)
        assert await read_all(store.read(digest)) == BLOB

    @pytest.mark.parametrize(
        ("offset", "length"),
        [(0, None), (0, 1), (5, 10), (10, None), (len(BLOB) - 1, 1), (len(BLOB), None), (0, len(BLOB))],
    )
    async def test_read_with_offset_and_length(
        self, store: BlobStore, offset: int, length: int | None
    ) -> None:
        digest = sha256(BLOB)
        await store.put(digest, BLOB)
        end = None if length is None else offset + length
        assert await read_all(store.read(digest, offset, length)) == BLOB[offset:end]

    async def test_large_blob_streams_in_chunks(self, store: BlobStore) -> None:
        data = bytes(range(256)) * 12_000  # ~3 MiB: more than one read chunk
        digest = sha256(data)
        await store.put(digest, data)
        chunks = [c async for c in store.read(digest)]
        assert b"".join(chunks) == data
        assert await read_all(store.read(digest, 1_500_000, 1_000_000)) == data[1_500_000:2_500_000]

    async def test_empty_blob(self, store: BlobStore) -> None:
        digest = sha256(b"")
        await store.put(digest, b"")
        assert await store.stat(digest) == 0
        assert await read_all(store.read(digest)) == b""

    async def test_sha512_blob(self, store: BlobStore) -> None:
        digest = sha512(BLOB)
        await store.put(digest, BLOB)
        assert await store.stat(digest) == len(BLOB)
        assert await store.stat(sha256(BLOB)) is None
        assert await read_all(store.read(digest, 3, 4)) == BLOB[3:7]

    async def test_put_is_idempotent(self, store: BlobStore) -> None:
        digest = sha256(BLOB)
        await store.put(digest, BLOB)
        await store.put(digest, BLOB)
        assert await store.stat(digest) == len(BLOB)
        assert await read_all(store.read(digest)) == BLOB
        assert [b.digest for b in [b async for b in store.list_blobs()]] == [digest]

    async def test_local_path_or_redirect(self, store: BlobStore) -> None:
        digest = sha256(BLOB)
        await store.put(digest, BLOB)
        path = store.local_path(digest)
        url = await store.redirect_url(digest)
        assert path is not None or url is not None, "a driver must offer a local file or a redirect"
        if path is not None:
            assert path.read_bytes() == BLOB
        if url is not None:
            assert url.startswith(("http://", "https://"))

    async def test_delete(self, store: BlobStore) -> None:
        keep, gone = sha256(b"keep"), sha256(b"gone")
        await store.put(keep, b"keep")
        await store.put(gone, b"gone")
        assert await store.delete(gone) is True
        assert await store.stat(gone) is None
        assert await store.delete(gone) is False
        with pytest.raises(FileNotFoundError):
            await read_all(store.read(gone))
        assert await read_all(store.read(keep)) == b"keep"

    async def test_set_aside_restore_and_purge(self, store: BlobStore) -> None:
        kept, dropped, missing = sha256(b"kept"), sha256(b"dropped"), sha256(b"never stored")
        await store.put(kept, b"kept")
        await store.put(dropped, b"dropped")
        assert await store.set_aside(missing) is False
        assert await store.set_aside(kept) is True
        assert await store.set_aside(dropped) is True
        assert await store.stat(kept) is None
        assert kept not in {b.digest async for b in store.list_blobs()}
        assert sorted([d async for d in store.list_aside()]) == sorted([kept, dropped])
        assert await store.restore_aside(kept) is True
        assert await read_all(store.read(kept)) == b"kept"
        await store.purge_aside(dropped)
        await store.purge_aside(dropped)  # gone already: no error
        assert await store.stat(dropped) is None
        assert await store.restore_aside(dropped) is False
        assert [d async for d in store.list_aside()] == []

    async def test_restore_aside_keeps_a_blob_stored_again(self, store: BlobStore) -> None:
        digest = sha256(b"again")
        await store.put(digest, b"again")
        assert await store.set_aside(digest) is True
        await store.put(digest, b"again")  # a push stored it again meanwhile
        assert await store.restore_aside(digest) is True
        assert await read_all(store.read(digest)) == b"again"
        assert [d async for d in store.list_aside()] == []

    async def test_list_blobs(self, store: BlobStore) -> None:
        assert [b async for b in store.list_blobs()] == []
        contents = {sha256(b"one"): b"one", sha256(b"two!"): b"two!", sha512(b"three"): b"three"}
        for digest, data in contents.items():
            await store.put(digest, data)
        listed = [b async for b in store.list_blobs()]
        assert all(isinstance(b, StoredBlob) for b in listed)
        assert {b.digest: b.size for b in listed} == {d: len(v) for d, v in contents.items()}
        assert all(b.modified > 0 for b in listed)
        await store.delete(sha256(b"one"))
        assert sha256(b"one") not in {b.digest async for b in store.list_blobs()}

    @pytest.mark.parametrize("digest", INVALID_DIGESTS)
    async def test_invalid_digests_are_refused(self, store: BlobStore, digest: str) -> None:
        with pytest.raises((RegistryError, ValueError)):
            await store.put(digest, b"x")
        with pytest.raises((RegistryError, ValueError)):
            await store.stat(digest)
        with pytest.raises((RegistryError, ValueError)):
            await read_all(store.read(digest))
        with pytest.raises((RegistryError, ValueError)):
            await store.delete(digest)
        assert [b async for b in store.list_blobs()] == []

    async def test_warm_up_changes_nothing_stored(self, store: BlobStore) -> None:
        await store.warm_up()
        assert [b async for b in store.list_blobs()] == []
        upload = new_upload_id()
        await store.upload_create(upload)
        await store.upload_append(upload, chunks_of([BLOB]))
        await store.upload_commit(upload, sha256(BLOB))
        assert await read_all(store.read(sha256(BLOB))) == BLOB

    async def test_close_changes_nothing_stored_and_the_store_still_works(self, store: BlobStore) -> None:
        await store.warm_up()
        await store.put(sha256(BLOB), BLOB)
        kept = new_upload_id()
        await store.upload_create(kept)
        await store.upload_append(kept, chunks_of([b"kept"]))
        await store.close()
        assert await read_all(store.read(sha256(BLOB))) == BLOB
        assert await store.upload_size(kept) == 4
        upload = new_upload_id()
        await store.upload_create(upload)
        await store.upload_append(upload, chunks_of([b"after"]))
        await store.upload_commit(upload, sha256(b"after"))
        assert await store.stat(sha256(b"after")) == 5

    # -- uploads ---------------------------------------------------------------------
    async def test_upload_list_has_the_uploads_in_progress_with_their_last_write(
        self, store: BlobStore
    ) -> None:
        assert [entry async for entry in store.upload_list()] == []
        before = time.time() - 60  # a store's clock may be a little off this one
        ended, cancelled, open_ = new_upload_id(), new_upload_id(), new_upload_id()
        for upload in (ended, cancelled, open_):
            await store.upload_create(upload)
        await store.upload_append(ended, chunks_of([b"x"]))
        await store.upload_commit(ended, sha256(b"x"))
        await store.upload_delete(cancelled)
        listed = [entry async for entry in store.upload_list()]
        assert [name for name, _ in listed] == [open_]
        assert before < listed[0][1] < time.time() + 60

    async def test_upload_lifecycle(self, store: BlobStore) -> None:
        upload = new_upload_id()
        assert await store.upload_size(upload) is None
        await store.upload_create(upload)
        assert await store.upload_size(upload) == 0
        assert await store.upload_append(upload, chunks_of([b"hello ", b"wor"])) == 9
        assert await store.upload_append(upload, chunks_of([b"ld"])) == 11
        assert await store.upload_append(upload, chunks_of([])) == 11
        assert await store.upload_size(upload) == 11
        assert await read_all(store.upload_read(upload)) == b"hello world"
        digest = sha256(b"hello world")
        assert await store.stat(digest) is None  # nothing visible before the commit
        await store.upload_commit(upload, digest)
        assert await store.stat(digest) == 11
        assert await read_all(store.read(digest)) == b"hello world"
        assert await store.upload_size(upload) is None
        assert digest in {b.digest async for b in store.list_blobs()}

    async def test_upload_of_many_chunks(self, store: BlobStore) -> None:
        upload = new_upload_id()
        await store.upload_create(upload)
        parts = [bytes([i]) * 70_000 for i in range(40)]  # ~2.7 MiB, crossing write buffers
        data = b"".join(parts)
        half = len(parts) // 2
        assert await store.upload_append(upload, chunks_of(parts[:half])) == len(b"".join(parts[:half]))
        assert await store.upload_append(upload, chunks_of(parts[half:])) == len(data)
        assert await read_all(store.upload_read(upload)) == data
        await store.upload_commit(upload, sha512(data))
        assert await read_all(store.read(sha512(data), 69_999, 2)) == data[69_999:70_001]

    @pytest.mark.parametrize(
        "sizes",
        [
            [],  # nothing appended
            [5, 3],  # small: below any write buffer
            [70_000] * 40,  # crossing write buffers, with a partial last one
            [1 << 20] * 3,  # whole buffers only
            [1, (1 << 20) + 7, 65_000],  # odd splits around a buffer
            [3, 9 << 20, 5],  # one chunk larger than several buffers (an in-process client's body)
        ],
    )
    async def test_append_updates_the_hasher_in_order(self, store: BlobStore, sizes: list[int]) -> None:
        upload = new_upload_id()
        await store.upload_create(upload)
        parts = [
            bytes([(7 * i + n) % 251 for n in range(7)]) * (size // 7) + b"x" * (size % 7)
            for i, size in enumerate(sizes)
        ]
        half = len(parts) // 2
        hasher = hashlib.sha256()
        await store.upload_append(upload, chunks_of(parts[:half]), None, hasher)
        await store.upload_append(upload, chunks_of(parts[half:]), None, hasher)
        data = b"".join(parts)
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
        assert await read_all(store.upload_read(upload)) == data

    async def test_empty_upload_commits(self, store: BlobStore) -> None:
        upload = new_upload_id()
        await store.upload_create(upload)
        await store.upload_commit(upload, sha256(b""))
        assert await store.stat(sha256(b"")) == 0

    async def test_upload_delete(self, store: BlobStore) -> None:
        upload = new_upload_id()
        await store.upload_create(upload)
        await store.upload_append(upload, chunks_of([b"data"]))
        await store.upload_delete(upload)
        assert await store.upload_size(upload) is None
        await store.upload_delete(upload)  # no error when gone
        await store.upload_delete(new_upload_id())
        assert [b async for b in store.list_blobs()] == []

    async def test_append_to_unknown_upload(self, store: BlobStore) -> None:
        with pytest.raises(FileNotFoundError):
            await store.upload_append(new_upload_id(), chunks_of([b"x"]))

    async def test_uploads_are_independent(self, store: BlobStore) -> None:
        a, b = new_upload_id(), new_upload_id()
        await store.upload_create(a)
        await store.upload_create(b)
        await store.upload_append(a, chunks_of([b"aaa"]))
        await store.upload_append(b, chunks_of([b"b"]))
        assert (await store.upload_size(a), await store.upload_size(b)) == (3, 1)
        await store.upload_delete(a)
        assert await read_all(store.upload_read(b)) == b"b"

    @pytest.mark.parametrize("limit", [0, 5, 10])
    async def test_limit_leaves_upload_as_before(self, store: BlobStore, limit: int) -> None:
        upload = new_upload_id()
        await store.upload_create(upload)
        before = b"12345"[: min(limit, 5)]
        if before:
            await store.upload_append(upload, chunks_of([before]), limit)
        with pytest.raises(UploadTooLarge):
            await store.upload_append(upload, chunks_of([b"abc", b"defghijk"]), limit)
        assert await store.upload_size(upload) == len(before)
        assert await read_all(store.upload_read(upload)) == before
        # Up to the limit exactly is fine afterwards.
        fill = b"z" * (limit - len(before))
        assert await store.upload_append(upload, chunks_of([fill]), limit) == limit

    async def test_limit_counts_the_whole_upload(self, store: BlobStore) -> None:
        upload = new_upload_id()
        await store.upload_create(upload)
        await store.upload_append(upload, chunks_of([b"x" * 8]), 10)
        with pytest.raises(UploadTooLarge):
            await store.upload_append(upload, chunks_of([b"y" * 3]), 10)
        assert await read_all(store.upload_read(upload)) == b"x" * 8

    async def test_broken_chunk_stream_leaves_upload_as_before(self, store: BlobStore) -> None:
        upload = new_upload_id()
        await store.upload_create(upload)
        await store.upload_append(upload, chunks_of([b"good"]))
        big = [b"q" * 600_000] * 4  # past the driver's write buffer before failing
        with pytest.raises(ConnectionResetError):
            await store.upload_append(upload, failing_after(big, ConnectionResetError("client went away")))
        assert await store.upload_size(upload) == 4
        assert await read_all(store.upload_read(upload)) == b"good"
        assert await store.upload_append(upload, chunks_of([b"!"])) == 5

    async def test_commit_over_existing_blob(self, store: BlobStore) -> None:
        digest = sha256(b"same")
        await store.put(digest, b"same")
        upload = new_upload_id()
        await store.upload_create(upload)
        await store.upload_append(upload, chunks_of([b"same"]))
        await store.upload_commit(upload, digest)
        assert await read_all(store.read(digest)) == b"same"
        assert [b.digest async for b in store.list_blobs()] == [digest]

    @pytest.mark.parametrize("upload_id", INVALID_UPLOAD_IDS)
    async def test_invalid_upload_ids_are_refused(self, store: BlobStore, upload_id: str) -> None:
        with pytest.raises(ValueError, match="upload id"):
            await store.upload_create(upload_id)
        with pytest.raises(ValueError, match="upload id"):
            await store.upload_append(upload_id, chunks_of([b"x"]))
        with pytest.raises(ValueError, match="upload id"):
            await read_all(store.upload_read(upload_id))
        with pytest.raises(ValueError, match="upload id"):
            await store.upload_commit(upload_id, sha256(b"x"))
        assert await store.upload_size(upload_id) is None
        await store.upload_delete(upload_id)  # silently nothing
        assert [b async for b in store.list_blobs()] == []

    @pytest.mark.parametrize("digest", INVALID_DIGESTS)
    async def test_commit_refuses_invalid_digest(self, store: BlobStore, digest: str) -> None:
        upload = new_upload_id()
        await store.upload_create(upload)
        await store.upload_append(upload, chunks_of([b"x"]))
        with pytest.raises((RegistryError, ValueError)):
            await store.upload_commit(upload, digest)
        assert await read_all(store.upload_read(upload)) == b"x"
        assert [b async for b in store.list_blobs()] == []
