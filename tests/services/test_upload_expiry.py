from __future__ import annotations

import datetime as dt

from moorage.app import MoorageApp


async def test_idle_uploads_are_discarded_and_fresh_ones_kept(app: MoorageApp) -> None:
    blobs = app.services.blobs
    store = app.services.store
    old = await blobs.start_upload("lab/uploads")
    # Age the first upload: move the service's clock back while it is touched.
    real_clock = blobs.clock
    blobs.clock = lambda: real_clock() - dt.timedelta(hours=30)
    try:

        async def chunk():  # type: ignore[no-untyped-def]
            yield b"stale bytes"

        await blobs.append("lab/uploads", old, chunk(), None)
    finally:
        blobs.clock = real_clock
    fresh = await blobs.start_upload("lab/uploads")

    assert await blobs.expire_uploads(dt.timedelta(hours=24)) == 1
    assert await store.upload_size(old) is None
    assert await store.upload_size(fresh) == 0
    assert await blobs.upload_status("lab/uploads", fresh) == 0
