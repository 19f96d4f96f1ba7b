"""``Database`` on SQLite: the ``synchronous`` setting reaches every connection it opens; the
processes' write lock times out and gives up cleanly."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from moorage.db.engine import Database, _ProcessLock

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


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """The write lock of ``tmp_path/db.writelock``, held as another process would hold it (a
    second open file: ``flock`` locks belong to open files, not processes)."""
    path = tmp_path / "db.writelock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path, fd
    finally:
        os.close(fd)


def _free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


async def _eventually_free(path: Path) -> bool:
    for _ in range(200):
        if _free(path):
            return True
        await asyncio.sleep(0.01)
    return False


async def _waiting(lock: _ProcessLock) -> asyncio.Task[None]:
    """``lock.acquire`` started and seen waiting (its thread blocked in ``flock``)."""
    task = asyncio.create_task(lock.acquire(max_wait=30))
    await asyncio.sleep(0.05)
    assert not task.done()
    return task


async def test_a_writer_that_waits_too_long_is_told_the_database_is_locked(held: tuple[Path, int]) -> None:
    path, fd = held
    lock = _ProcessLock(str(path))
    with pytest.raises(sqlite3.OperationalError, match="locked by another process"):
        await lock.acquire(max_wait=0.1)
    # the waiting thread takes the lock once it is released, and gives it back at once
    fcntl.flock(fd, fcntl.LOCK_UN)
    assert await _eventually_free(path)
    lock.close()


async def test_a_writer_cancelled_while_it_waits_leaves_the_lock_free(held: tuple[Path, int]) -> None:
    path, fd = held
    lock = _ProcessLock(str(path))
    waiting = await _waiting(lock)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    fcntl.flock(fd, fcntl.LOCK_UN)
    assert await _eventually_free(path)
    lock.close()


async def test_a_writer_gets_the_lock_when_the_other_process_lets_go(held: tuple[Path, int]) -> None:
    path, fd = held
    lock = _ProcessLock(str(path))
    waiting = await _waiting(lock)
    fcntl.flock(fd, fcntl.LOCK_UN)
    await asyncio.wait_for(waiting, 10)
    assert not _free(path)
    lock.release()
    assert _free(path)
    lock.close()
