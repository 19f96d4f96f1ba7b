"""The filesystem blob store: the conformance suite (durable and not) plus on-disk checks."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
from tests.storage.conformance import (
    BLOB,
    BlobStoreConformance,
    chunks_of,
    failing_after,
    new_upload_id,
    read_all,
    sha256,
    sha512,
)

from moorage.storage.base import UploadTooLarge
from moorage.storage.filesystem import FilesystemBlobStore


class TestFilesystemConformance(BlobStoreConformance):
    @pytest.fixture(params=[True, False], ids=["durable", "not-durable"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> FilesystemBlobStore:
        return FilesystemBlobStore(tmp_path / "store", durable=request.param)


@pytest.fixture(params=[True, False], ids=["durable", "not-durable"])
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "store", durable=request.param)


def files_under(root: Path) -> list[str]:
    """Files of the store but its spare files (made in a thread, at times of its choosing)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "spare"
    )


def spare_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "spare").rglob("*") if p.is_file())


# -- layout, as documented in moorage.storage.filesystem --------------------------------
def test_new_store_creates_its_directories(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    FilesystemBlobStore(root)
    assert sorted(p.name for p in root.iterdir()) == ["blobs", "spare", "tmp", "uploads"]
    # Every digest prefix directory, up front (see FilesystemBlobStore._make_prefix_dirs).
    prefixes = [f"{i:02x}" for i in range(256)]
    assert sorted(p.name for p in (root / "blobs").iterdir()) == ["sha256", "sha512"]
    for algorithm in ("sha256", "sha512"):
        assert sorted(p.name for p in (root / "blobs" / algorithm).iterdir()) == prefixes
    FilesystemBlobStore(root)  # reopening an existing store is fine


def test_reopened_store_makes_no_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FilesystemBlobStore(tmp_path / "store")
    made: list[Path] = []
    real_mkdir = Path.mkdir

    def recording_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        made.append(self)
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", recording_mkdir)
    FilesystemBlobStore(tmp_path / "store")
    assert all(path.name in ("blobs", "uploads", "tmp", "spare") for path in made)


async def test_blob_layout(fs: FilesystemBlobStore) -> None:
    d256, d512 = sha256(BLOB), sha512(BLOB)
    await fs.put(d256, BLOB)
    await fs.put(d512, BLOB)
    e256, e512 = d256.split(":")[1], d512.split(":")[1]
    assert files_under(fs.root) == sorted(
        [f"blobs/sha256/{e256[:2]}/{e256}", f"blobs/sha512/{e512[:2]}/{e512}"]
    )
    assert fs.local_path(d256) == fs.root / "blobs" / "sha256" / e256[:2] / e256
    assert (fs.root / "blobs" / "sha256" / e256[:2] / e256).read_bytes() == BLOB


async def test_upload_layout(fs: FilesystemBlobStore) -> None:
    upload = new_upload_id()
    await fs.upload_create(upload)
    await fs.upload_append(upload, chunks_of([b"abc"]))
    assert files_under(fs.root) == [f"uploads/{upload}"]
    assert [name async for name, _ in fs.upload_list()] == [upload]
    await fs.upload_commit(upload, sha256(b"abc"))
    e = sha256(b"abc").split(":")[1]
    assert files_under(fs.root) == [f"blobs/sha256/{e[:2]}/{e}"]
    assert [name async for name, _ in fs.upload_list()] == []


# -- spare files: uploads start by renaming one, not by creating a file ------------------
async def test_uploads_take_the_spare_files_made_ahead(fs: FilesystemBlobStore) -> None:
    await fs.warm_up()
    spares = spare_files(fs.root)
    assert len(spares) == 4
    an_hour_ago = time.time() - 3600
    for spare in spares:
        os.utime(spare, (an_hour_ago, an_hour_ago))
    upload = new_upload_id()
    await fs.upload_create(upload)
    left = spare_files(fs.root)
    assert len(left) == 3
    assert set(left) < set(spares)
    assert await fs.upload_size(upload) == 0
    # The upload's age starts now, not when its file was made (expiry goes by it).
    [(_, started)] = [entry async for entry in fs.upload_list()]
    assert started > time.time() - 60


async def test_an_existing_upload_is_refused_even_from_a_spare(fs: FilesystemBlobStore) -> None:
    await fs.warm_up()
    upload = new_upload_id()
    await fs.upload_create(upload)
    await fs.upload_append(upload, chunks_of([b"kept"]))
    spares = spare_files(fs.root)
    with pytest.raises(FileExistsError):
        await fs.upload_create(upload)
    assert await fs.upload_size(upload) == 4
    assert spare_files(fs.root) == spares  # the spare it tried is still there, for the next
    other = new_upload_id()
    await fs.upload_create(other)
    assert len(spare_files(fs.root)) == len(spares) - 1


async def test_spares_removed_meanwhile_are_skipped_and_made_again(fs: FilesystemBlobStore) -> None:
    await fs.warm_up()
    for spare in spare_files(fs.root):
        spare.unlink()  # as a newly started process does with an idle one's
    upload = new_upload_id()
    await fs.upload_create(upload)
    assert await fs.upload_size(upload) == 0
    for _ in range(500):  # made again in a thread
        if len(spare_files(fs.root)) == 4:
            break
        await asyncio.sleep(0.01)
    assert len(spare_files(fs.root)) == 4


async def test_a_closed_store_leaves_no_spare_file_and_still_works(fs: FilesystemBlobStore) -> None:
    await fs.warm_up()
    assert spare_files(fs.root)
    await fs.close()
    assert spare_files(fs.root) == []
    assert list((fs.root / "spare").iterdir()) == []
    upload = new_upload_id()
    await fs.upload_create(upload)
    assert await fs.upload_size(upload) == 0


def test_a_new_store_removes_spares_of_processes_long_gone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "spare" / "gone").mkdir(parents=True)
    (root / "spare" / "gone" / "a").touch()
    (root / "spare" / "alive").mkdir()
    (root / "spare" / "alive" / "b").touch()
    long_ago = os.stat(root).st_mtime - 2 * 3600
    os.utime(root / "spare" / "gone", (long_ago, long_ago))
    FilesystemBlobStore(root)
    assert sorted(p.name for p in (root / "spare").iterdir()) == ["alive"]
    assert (root / "spare" / "alive" / "b").exists()


async def test_tmp_is_empty_after_put(fs: FilesystemBlobStore) -> None:
    await fs.put(sha256(b"x"), b"x")
    assert list((fs.root / "tmp").iterdir()) == []


async def test_reopened_store_sees_blobs_and_uploads(tmp_path: Path) -> None:
    first = FilesystemBlobStore(tmp_path / "s", durable=False)
    await first.put(sha256(b"kept"), b"kept")
    upload = new_upload_id()
    await first.upload_create(upload)
    await first.upload_append(upload, chunks_of([b"partial"]))
    second = FilesystemBlobStore(tmp_path / "s", durable=False)
    assert await second.stat(sha256(b"kept")) == 4
    assert await read_all(second.upload_read(upload)) == b"partial"


async def test_upload_create_twice_is_refused(fs: FilesystemBlobStore) -> None:
    upload = new_upload_id()
    await fs.upload_create(upload)
    await fs.upload_append(upload, chunks_of([b"abc"]))
    with pytest.raises(FileExistsError):
        await fs.upload_create(upload)
    assert await fs.upload_size(upload) == 3


# -- failures never leave partial blobs --------------------------------------------------
async def test_failed_put_leaves_nothing(fs: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    digest = sha256(BLOB)
    with pytest.raises(OSError, match="No space"):
        await fs.put(digest, BLOB)
    monkeypatch.undo()
    assert await fs.stat(digest) is None
    assert files_under(fs.root) == []  # no blob, no leftover temporary file
    await fs.put(digest, BLOB)  # and the store still works
    assert await read_all(fs.read(digest)) == BLOB


async def test_failed_write_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemBlobStore(tmp_path / "store", durable=True)

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    digest = sha256(BLOB)
    with pytest.raises(OSError, match="Input/output"):
        await store.put(digest, BLOB)
    monkeypatch.undo()
    assert files_under(store.root) == []


async def test_failed_commit_keeps_the_upload_and_publishes_nothing(
    fs: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = new_upload_id()
    await fs.upload_create(upload)
    await fs.upload_append(upload, chunks_of([b"payload"]))

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="cross-device"):
        await fs.upload_commit(upload, sha256(b"payload"))
    monkeypatch.undo()
    assert await fs.stat(sha256(b"payload")) is None
    assert files_under(fs.root / "blobs") == []
    assert await read_all(fs.upload_read(upload)) == b"payload"
    await fs.upload_commit(upload, sha256(b"payload"))  # retrying works
    assert await read_all(fs.read(sha256(b"payload"))) == b"payload"


async def test_failed_append_is_truncated_on_disk(fs: FilesystemBlobStore) -> None:
    upload = new_upload_id()
    await fs.upload_create(upload)
    await fs.upload_append(upload, chunks_of([b"ok"]))
    with pytest.raises(RuntimeError):
        await fs.upload_append(upload, failing_after([b"x" * (3 << 20)], RuntimeError("boom")))
    assert (fs.root / "uploads" / upload).stat().st_size == 2
    with pytest.raises(UploadTooLarge):
        await fs.upload_append(upload, chunks_of([b"y" * (2 << 20)] * 3), limit=5 << 20)
    assert (fs.root / "uploads" / upload).read_bytes() == b"ok"
    assert files_under(fs.root / "blobs") == []


# -- durability ------------------------------------------------------------------------
@pytest.mark.parametrize("durable", [True, False])
async def test_fsync_only_when_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    store = FilesystemBlobStore(tmp_path / "store", durable=durable)
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    await store.put(sha256(b"a"), b"a")
    upload = new_upload_id()
    await store.upload_create(upload)
    await store.upload_append(upload, chunks_of([b"b"]))
    await store.upload_commit(upload, sha256(b"b"))
    # Durable: the file and its directory, for the put and for the commit (the prefix
    # directories were made with the store).
    assert len(calls) == (2 + 2 if durable else 0)
    calls.clear()
    # A prefix directory removed since is made again, and its entry in sha256/ flushed too.
    taken = {sha256(b"a")[7:9], sha256(b"b")[7:9]}
    data = next(d for d in (str(i).encode() for i in range(100_000)) if sha256(d)[7:9] not in taken)
    (store.root / "blobs" / "sha256" / sha256(data)[7:9]).rmdir()
    await store.put(sha256(data), data)
    assert await read_all(store.read(sha256(data))) == data
    assert len(calls) == (3 if durable else 0)


@pytest.mark.parametrize("durable", [True, False])
async def test_large_uploads_stream_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """Durable: as an upload grows, what lies a few MiB behind its end is waited for and dropped
    from the page cache, in order and once, across appends; the committed blob is dropped too.
    The content is what was sent either way."""
    from moorage.storage import filesystem

    store = FilesystemBlobStore(tmp_path / "store", durable=durable)
    dropped: list[tuple[int, int]] = []
    real_drop = filesystem._drop_cached

    def recording_drop(fd: int, offset: int, length: int) -> None:
        dropped.append((offset, length))
        real_drop(fd, offset, length)

    monkeypatch.setattr(filesystem, "_drop_cached", recording_drop)
    pieces = [os.urandom(700_000) for _ in range(30)]  # ~20 MiB in buffers of ~1 MiB
    upload = new_upload_id()
    await store.upload_create(upload)
    await store.upload_append(upload, chunks_of(pieces[:12]))
    await store.upload_append(upload, chunks_of(pieces[12:]))
    data = b"".join(pieces)
    await store.upload_commit(upload, sha256(data))
    assert await read_all(store.read(sha256(data))) == data
    if not durable:
        assert dropped == []
        return
    *while_streaming, at_commit = dropped
    assert at_commit == (0, 0)  # the whole committed file
    assert while_streaming, "nothing was settled while the upload streamed"
    covered = 0  # every page from the start is settled once or more, in order
    for offset, length in while_streaming:
        assert offset % 4096 == 0
        assert length > 0
        assert offset <= covered
        covered = max(covered, offset + length)
    assert len(data) - filesystem._SETTLE_LAG - (2 << 20) <= covered <= len(data) - filesystem._SETTLE_LAG


async def test_each_buffer_is_hashed_and_written_in_threads_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A buffer's hash and write run in two pools, so one thread never does both in turn."""
    import hashlib
    import threading

    from moorage.storage import filesystem

    store = FilesystemBlobStore(tmp_path / "store", durable=True)
    ran: list[tuple[str, str]] = []
    real_hash, real_write = filesystem._hash_parts, filesystem._write_at

    def hash_parts(hasher: object, parts: list[bytes]) -> None:
        ran.append(("hash", threading.current_thread().name))
        real_hash(hasher, parts)  # type: ignore[arg-type]

    def write_at(*args: object) -> int:
        ran.append(("write", threading.current_thread().name))
        return real_write(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(filesystem, "_hash_parts", hash_parts)
    monkeypatch.setattr(filesystem, "_write_at", write_at)
    pieces = [os.urandom(300_000) for _ in range(10)]  # three buffers of ~1 MiB
    upload = new_upload_id()
    await store.upload_create(upload)
    hasher = hashlib.sha256()
    await store.upload_append(upload, chunks_of(pieces), hasher=hasher)  # type: ignore[arg-type]
    assert hasher.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert {name.rsplit("_", 1)[0] for kind, name in ran if kind == "hash"} == {"moorage-blob-hash"}
    assert {name.rsplit("_", 1)[0] for kind, name in ran if kind == "write"} == {"moorage-blob-write"}
    assert len(ran) == 6


async def test_small_committed_blobs_stay_in_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moorage.storage import filesystem

    store = FilesystemBlobStore(tmp_path / "store", durable=True)
    dropped: list[tuple[int, int]] = []
    monkeypatch.setattr(
        filesystem, "_drop_cached", lambda fd, offset, length: dropped.append((offset, length))
    )
    upload = new_upload_id()
    await store.upload_create(upload)
    await store.upload_append(upload, chunks_of([b"c" * 1000]))
    await store.upload_commit(upload, sha256(b"c" * 1000))
    assert dropped == []


@pytest.mark.parametrize("durable", [True, False])
async def test_a_blob_restored_from_aside_is_durable_before_the_aside_copy_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    store = FilesystemBlobStore(tmp_path / "store", durable=durable)
    await store.put(sha256(b"kept"), b"kept")
    assert await store.set_aside(sha256(b"kept"))
    # Garbage collection removed the (now empty) prefix directory meanwhile: restoring makes it.
    blob_dir = store.root / "blobs" / "sha256" / sha256(b"kept")[7:9]
    blob_dir.rmdir()
    events: list[str] = []
    real_fsync, real_unlink = os.fsync, Path.unlink

    def recording_fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def recording_unlink(path: Path, missing_ok: bool = False) -> None:
        events.append("unlink")
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(Path, "unlink", recording_unlink)
    assert await store.restore_aside(sha256(b"kept"))
    # The blob's directory and its new entry in sha256/, then the aside copy goes.
    assert events == (["fsync", "fsync", "unlink"] if durable else ["unlink"])
    assert await read_all(store.read(sha256(b"kept"))) == b"kept"


# -- nothing escapes the root ----------------------------------------------------------
@pytest.mark.parametrize(
    "digest", ["sha256:../../../../outside", "sha256:" + "a" * 62 + "/..", "../../outside:" + "a" * 64]
)
async def test_traversal_digests_touch_nothing_outside(tmp_path: Path, digest: str) -> None:
    store = FilesystemBlobStore(tmp_path / "deep" / "store", durable=False)
    with pytest.raises(Exception, match="digest"):
        await store.put(digest, b"evil")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("upload_id", ["../../outside", "..", "../blobs", "x/../../../y"])
async def test_traversal_upload_ids_touch_nothing_outside(tmp_path: Path, upload_id: str) -> None:
    store = FilesystemBlobStore(tmp_path / "deep" / "store", durable=False)
    with pytest.raises(ValueError, match="invalid upload id"):
        await store.upload_create(upload_id)
    assert files_under(tmp_path) == []


# -- threads --------------------------------------------------------------------------------
async def test_a_cancelled_commit_still_ends_before_its_caller_goes_on(
    fs: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request cancelled during a commit (the client went away) must not run its cleanup
    while the commit's thread is still moving the file into place."""
    upload = new_upload_id()
    await fs.upload_create(upload)
    await fs.upload_append(upload, chunks_of([BLOB]))
    started, release = threading.Event(), threading.Event()
    install = fs._install

    def slow_install(source: Path, target: Path) -> None:
        started.set()
        release.wait(10)
        install(source, target)

    monkeypatch.setattr(fs, "_install", slow_install)
    commit = asyncio.create_task(fs.upload_commit(upload, sha256(BLOB)))
    while not started.is_set():
        await asyncio.sleep(0.001)
    commit.cancel()
    await asyncio.sleep(0.05)
    assert not commit.done()  # waiting for the thread, not cancelled under it
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await commit
    assert await fs.stat(sha256(BLOB)) == len(BLOB)  # the commit finished; then the cancellation


async def test_warm_up_starts_the_upload_threads_and_stores_nothing(tmp_path: Path) -> None:
    fs = FilesystemBlobStore(tmp_path / "store")
    await fs.warm_up()
    assert fs._hashers._threads
    assert fs._writers._threads
    assert files_under(fs.root) == []
