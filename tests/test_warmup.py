"""A server worker's warm-up: it runs the first-use paths and leaves no trace in the database."""

from __future__ import annotations

from sqlalchemy import func, select

from moorage.app import MoorageApp
from moorage.db.tables import metadata
from moorage.warmup import WARM_UP_REPOSITORY, warm_up


async def _row_counts(app: MoorageApp) -> dict[str, int]:
    async with app.services.db.read() as conn:
        return {
            table.name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for table in metadata.sorted_tables
        }


async def test_warm_up_answers_its_requests_and_writes_nothing(app: MoorageApp) -> None:
    before = await _row_counts(app)
    statuses = await warm_up(app, app.services)
    assert statuses == {"GET /v2/": 401, "HEAD manifest": 404, "HEAD blob": 404, "GET upload": 404}
    assert await _row_counts(app) == before
    assert await app.services.store.upload_size("0" * 36) is None
    assert [blob async for blob in app.services.store.list_blobs()] == []


async def test_warm_up_leaves_a_repository_of_its_name_alone(app: MoorageApp) -> None:
    """Nothing is found even where the repository exists: no pull is recorded."""
    digest = await app.services.blobs.put_small(WARM_UP_REPOSITORY, b"real content")
    before = await _row_counts(app)
    statuses = await warm_up(app, app.services)
    assert statuses["HEAD manifest"] == statuses["HEAD blob"] == 404
    assert await _row_counts(app) == before
    assert await app.services.blobs.read_small(digest, 100) == b"real content"
