"""Uploads seen by two processes: each remembers the repository of the uploads it knows, and
the store says whether an upload still exists, whichever process ended it."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator

import pytest

from moorage.app import MoorageApp, create_app
from moorage.config import Settings
from moorage.oci.errors import BlobUploadUnknown


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
    assert await there.upload_status("lab/a", upload) == 0  # looked up in the database
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
    assert await here.expire_uploads(dt.timedelta(hours=24)) == 0
    assert ended not in here._owners
    assert ended not in here._hash_states
    assert kept in here._owners
    assert await here.upload_status("lab/a", kept) == 0
