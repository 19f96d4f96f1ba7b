"""Uploads seen by two processes: an upload lives in the store alone, under a name that
carries its repository, so either process finds it (and only under its repository), and the
store says whether it still exists, whichever process ended it."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from moorage.app import MoorageApp, create_app
from moorage.config import Settings
from moorage.db import content as q
from moorage.oci.errors import BlobUnknown, BlobUploadUnknown


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
async def other(settings: Settings, app: MoorageApp) -> AsyncIterator[MoorageApp]:
    """A second process's app over the same database and data directory."""
    second = create_app(settings)
    try:
        yield second
    finally:
        await second.services.db.close()


async def test_an_upload_cancelled_by_another_process_is_unknown_here(
    app: MoorageApp, other: MoorageApp
) -> None:
    here, there = app.services.blobs, other.services.blobs
    upload = await here.start_upload("lab/a")
    assert await there.upload_status("lab/a", upload) == 0  # found in the shared store
    await there.cancel("lab/a", upload)
    with pytest.raises(BlobUploadUnknown):
        await here.upload_status("lab/a", upload)
    with pytest.raises(BlobUploadUnknown):
        await here.complete("lab/a", upload, "sha256:" + hashlib.sha256(b"x").hexdigest(), _chunks(b"x"))


async def test_an_upload_completed_by_another_process_is_unknown_here(
    app: MoorageApp, other: MoorageApp
) -> None:
    here, there = app.services.blobs, other.services.blobs
    upload = await here.start_upload("lab/a")
    await here.append("lab/a", upload, _chunks(b"hello "), None)
    digest = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
    await there.complete("lab/a", upload, digest, _chunks(b"world"))
    with pytest.raises(BlobUploadUnknown):
        await here.upload_status("lab/a", upload)
    assert (await here.locate("lab/a", digest)).size == 11


async def test_a_remembered_upload_is_still_only_its_repositorys(app: MoorageApp, other: MoorageApp) -> None:
    upload = await app.services.blobs.start_upload("lab/a")
    for blobs in (app.services.blobs, other.services.blobs):
        assert await blobs.upload_status("lab/a", upload) == 0
        with pytest.raises(BlobUploadUnknown):
            await blobs.upload_status("lab/b", upload)


async def test_housekeeping_forgets_uploads_another_process_ended(app: MoorageApp, other: MoorageApp) -> None:
    here = app.services.blobs
    ended, kept = await here.start_upload("lab/a"), await here.start_upload("lab/a")
    await other.services.blobs.cancel("lab/a", ended)
    assert len(here._hash_states) == 2
    assert await here.expire_uploads(dt.timedelta(hours=24)) == 0
    assert len(here._hash_states) == 1  # the cancelled upload's is gone
    assert await here.upload_status("lab/a", kept) == 0


async def test_an_upload_started_here_takes_chunks_there(app: MoorageApp, other: MoorageApp) -> None:
    """The second process has no hash state for it: it rebuilds it from the store."""
    here, there = app.services.blobs, other.services.blobs
    upload = await here.start_upload("lab/a")
    assert await here.append("lab/a", upload, _chunks(b"hello "), (0, 5)) == 6
    assert await there.append("lab/a", upload, _chunks(b"wor"), (6, 8)) == 9
    digest = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
    located = await here.complete("lab/a", upload, digest, _chunks(b"ld"))
    assert located.size == 11
    assert (await there.locate("lab/a", digest)).size == 11


@pytest.mark.parametrize(
    "upload_id",
    [
        "",
        "x",
        "../../blobs",
        "0b5e6f1c-9d5a-4b4e-9d1a-3c2e1f0a9b8c-extra",
        "0B5E6F1C-9D5A-4B4E-9D1A-3C2E1F0A9B8C",
    ],
)
async def test_ids_this_registry_never_hands_out_are_unknown(app: MoorageApp, upload_id: str) -> None:
    with pytest.raises(BlobUploadUnknown):
        await app.services.blobs.upload_status("lab/a", upload_id)


# -- publication: a blob's row commits only once its file is stored -------------------------
class _SlowCommitStore:
    """The real store, whose upload commit ends ``delay`` seconds late (or fails, with
    ``error``); ``ended`` is set once it has ended."""

    def __init__(self, app: MoorageApp, delay: float, error: Exception | None = None) -> None:
        self.store, self.delay, self.error = app.services.store, delay, error
        self.ended = asyncio.Event()

    async def upload_commit(self, upload_id: str, digest: str) -> None:
        await asyncio.sleep(self.delay)
        try:
            if self.error is not None:
                raise self.error
            await self.store.upload_commit(upload_id, digest)
        finally:
            self.ended.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def _recorded(app: MoorageApp, digest: str) -> int | None:
    async with app.services.db.read() as conn:
        return await q.blob_size(conn, digest)


async def test_a_blob_row_commits_only_once_its_file_is_stored(app: MoorageApp) -> None:
    blobs = app.services.blobs
    slow = _SlowCommitStore(app, 0.3)
    blobs.store = slow  # type: ignore[assignment]
    data = b"the file first, then the row"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    upload = await blobs.start_upload("lab/a")
    publishing = asyncio.create_task(blobs.complete("lab/a", upload, digest, _chunks(data)))
    await asyncio.sleep(0.15)  # the store's commit has not ended
    assert not slow.ended.is_set()
    assert await _recorded(app, digest) is None
    await publishing
    assert await _recorded(app, digest) == len(data)
    assert await slow.store.stat(digest) == len(data)


async def test_a_failed_store_commit_records_nothing(app: MoorageApp) -> None:
    blobs = app.services.blobs
    blobs.store = _SlowCommitStore(app, 0.05, OSError(28, "No space left on device"))  # type: ignore[assignment]
    data = b"never recorded"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    upload = await blobs.start_upload("lab/a")
    with pytest.raises(OSError, match="No space left"):
        await blobs.complete("lab/a", upload, digest, _chunks(data))
    assert await _recorded(app, digest) is None
    with pytest.raises(BlobUnknown):
        await blobs.locate("lab/a", digest)
    async with app.services.db.read() as conn:
        assert await q.repository_id(conn, "lab/a") is None  # the implicit creation rolled back too
