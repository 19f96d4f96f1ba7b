"""``Database`` on SQLite: the ``synchronous`` setting reaches every connection it opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from moorage.db.engine import Database

# What ``PRAGMA synchronous`` reads back.
_LEVELS = {"normal": 1, "full": 2}


@pytest.mark.parametrize("level", ["normal", "full"])
async def test_every_sqlite_connection_runs_at_the_configured_synchronous_level(
    tmp_path: Path, level: str
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'moorage.db'}", sqlite_synchronous=level)
    try:
        await database.migrate()
        async with database.read() as conn:
            read_level = (await conn.execute(text("PRAGMA synchronous"))).scalar()
        async with database.write() as conn:
            write_level = (await conn.execute(text("PRAGMA synchronous"))).scalar()
    finally:
        await database.close()
    assert (read_level, write_level) == (_LEVELS[level], _LEVELS[level])


async def test_an_in_memory_database_honours_it_too() -> None:
    database = Database("sqlite+aiosqlite:///:memory:", sqlite_synchronous="full")
    try:
        async with database.read() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == _LEVELS["full"]
    finally:
        await database.close()


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="normal or full"):
        Database("sqlite+aiosqlite:///:memory:", sqlite_synchronous="off")
