"""Idle uploads are discarded by the time their store last wrote them."""

from __future__ import annotations

import datetime as dt
import os
import time

from moorage.app import MoorageApp


async def _chunk():  # type: ignore[no-untyped-def]
    yield b"stale bytes"


async def test_idle_uploads_are_discarded_and_fresh_ones_kept(app: MoorageApp) -> None:
    blobs = app.services.blobs
    store = app.services.store
    old = await blobs.start_upload("lab/uploads")
    await blobs.append("lab/uploads", old, _chunk(), None)
    fresh = await blobs.start_upload("lab/uploads")
    (stored_old, written), (stored_fresh, _) = sorted(
        [entry async for entry in store.upload_list()], key=lambda entry: not entry[0].startswith(old)
    )
    assert stored_old.startswith(old)
    assert stored_fresh.startswith(fresh)
    assert abs(written - time.time()) < 60
    # Last written 30 hours ago.
    aged = time.time() - 30 * 3600
    os.utime(app.services.settings.resolved_storage_dir / "uploads" / stored_old, (aged, aged))

    assert await blobs.expire_uploads(dt.timedelta(hours=24)) == 1
    assert await store.upload_size(stored_old) is None
    assert await store.upload_size(stored_fresh) == 0
    assert await blobs.upload_status("lab/uploads", fresh) == 0
    assert [stored async for stored, _ in store.upload_list()] == [stored_fresh]


async def test_an_upload_started_from_an_old_spare_file_is_fresh(app: MoorageApp) -> None:
    """The store makes empty files ahead of time; an upload's age starts when it does."""
    blobs = app.services.blobs
    await app.services.store.warm_up()  # makes the spare files
    spares = [
        path for path in (app.services.settings.resolved_storage_dir / "spare").rglob("*") if path.is_file()
    ]
    assert spares
    aged = time.time() - 30 * 3600
    for spare in spares:
        os.utime(spare, (aged, aged))
    upload = await blobs.start_upload("lab/uploads")
    assert await blobs.expire_uploads(dt.timedelta(hours=24)) == 0
    assert await blobs.upload_status("lab/uploads", upload) == 0
    assert sum(path.exists() for path in spares) == len(spares) - 1  # it took one
