"""Connections: one ``Database`` per process, with separate read and write transactions.

SQLite (the embedded default) runs in WAL mode; write transactions start with
``BEGIN IMMEDIATE`` so a read lock never has to be upgraded. PostgreSQL runs at READ
COMMITTED with the statements written to be safe under concurrency (``ON CONFLICT`` upserts).

SQLite calls run inline on the event loop rather than in aiosqlite's thread: the queries
are indexed point lookups that take microseconds, while a hop to a thread and back costs
~50-100 us each, several times per transaction, and was most of the CPU of a manifest GET.
They run through SQLAlchemy's synchronous engine (``sqlite3`` itself), behind
``InlineConnection``, the part of ``AsyncConnection`` the services use: the asyncio layer
(a greenlet switch per call, the async DBAPI adapter) was still ~60% of a manifest GET.
What could block is kept off the loop: WAL readers never wait for a writer; writers of this
process take turns on an ``asyncio.Lock`` (no in-process busy waiting), and the worker
processes on an ``flock`` of ``<database>.writelock``, waited for in a thread (the kernel
wakes the waiter at once; SQLite's busy handler polls with growing sleeps, which let one
worker starve the other). ``BEGIN IMMEDIATE`` against any other writer (a CLI command) is
retried with ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Executable, Result, ScalarResult, create_engine, event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write transaction
_MIGRATION_WAIT = 600.0  # seconds a starting process waits for another one's migration
_T = TypeVar("_T")


class InlineConnection:
    """What the services use of ``AsyncConnection``, over a synchronous SQLAlchemy connection
    whose statements run right here, on the event loop (SQLite only).

    ``Database`` hands it out typed as ``AsyncConnection``; it offers ``execute``,
    ``exec_driver_sql``, ``scalar``, ``scalars``, ``run_sync``, ``dialect`` and
    ``sync_connection``. Results are the same ``Result`` objects, but read from the ``sqlite3``
    cursor as they are consumed (aiosqlite fetched every row at once): consume a
    ``... RETURNING`` result (``scalar_one()``, ``all()``, iterating it) before the block ends.
    """

    __slots__ = ("sync_connection",)

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(
        self, statement: Executable, parameters: Any = None, *, execution_options: Any = None
    ) -> Result[Any]:
        return self.sync_connection.execute(statement, parameters, execution_options=execution_options)

    async def exec_driver_sql(
        self, statement: str, parameters: Any = None, execution_options: Any = None
    ) -> Result[Any]:
        return self.sync_connection.exec_driver_sql(statement, parameters, execution_options)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return self.sync_connection.scalar(statement, parameters)

    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]:
        return self.sync_connection.scalars(statement, parameters)

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return fn(self.sync_connection, *args, **kwargs)


def _sqlite_connect(path: str, busy_timeout_ms: int, synchronous: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit BEGIN; transactions are begun explicitly below.
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return conn


def _driver(conn: Connection) -> sqlite3.Connection:
    """The ``sqlite3`` connection under a synchronous SQLite connection."""
    return conn.connection.driver_connection  # type: ignore[return-value]


class _InlinePool:
    """Open connections of an inline SQLite engine, kept between transactions: a checkout from
    SQLAlchemy's pool and back (a ``Connection``, its pool record, the reset on return) cost
    more than the indexed lookup of a manifest GET. Used from the event loop's thread only."""

    def __init__(self, engine: Engine, keep: int = 20) -> None:
        self.engine = engine
        self.keep = keep
        self.free: list[Connection] = []

    def take(self) -> Connection:
        return self.free.pop() if self.free else self.engine.connect()

    def give(self, sync: Connection) -> None:
        """Keep ``sync`` for the next transaction, or close it if it is not in a clean state."""
        clean = not sync.closed and not sync.invalidated and not sync.in_transaction()
        if clean and not _driver(sync).in_transaction and len(self.free) < self.keep:
            self.free.append(sync)
        else:
            sync.close()

    def dispose(self) -> None:
        while self.free:
            self.free.pop().close()
        self.engine.dispose()


class _ProcessLock:
    """An exclusive ``flock`` shared by every process that opens the same database."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    async def acquire(self, max_wait: float = _BUSY_TIMEOUT) -> None:
        if self.fd is None:  # opened lazily, so a closed Database can be used again like its engines
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waiter = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, self.fd, fcntl.LOCK_EX)
        try:
            # asyncio.timeout, not wait_for: wait_for on 3.11 loses a cancel that comes as the lock
            # is taken.
            async with asyncio.timeout(max_wait):
                await asyncio.shield(waiter)
        except BaseException as exc:
            # Cancelled or timed out: the thread may still get the lock; give it back then.
            waiter.add_done_callback(self._release_if_acquired)
            if isinstance(exc, asyncio.TimeoutError):
                raise sqlite3.OperationalError("database is locked by another process") from None
            raise

    def _release_if_acquired(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.cancelled() and waiter.exception() is None:
            self.release()

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


async def _begin_immediate(raw: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` without blocking the event loop while another process writes."""
    delay, deadline = 0.0005, time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.005)


class Database:
    """The metadata database of one process."""

    def __init__(
        self, url: str, schema: str | None = None, pool_size: int = 10, sqlite_synchronous: str = "normal"
    ) -> None:
        """``sqlite_synchronous``: SQLite's ``synchronous`` pragma, ``normal`` or ``full``. In WAL
        mode ``normal`` loses nothing when the process crashes, but a power loss may lose the last
        commits; ``full`` fsyncs the WAL at every commit."""
        if sqlite_synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"sqlite_synchronous must be normal or full, not {sqlite_synchronous!r}")
        self.url = url
        self.schema = schema
        self.sqlite_synchronous = sqlite_synchronous.upper()
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._write_lock: asyncio.Lock | None = None
        self._process_lock: _ProcessLock | None = None
        self._inline_reader: _InlinePool | None = None
        self._inline_writer: _InlinePool | None = None
        self._reader: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._inline_reader = _InlinePool(
                self._inline_sqlite_engine(parsed.database, 30000, self.sqlite_synchronous)
            )
            # The writer never lets SQLite sleep on a lock: _begin_immediate retries instead.
            self._inline_writer = _InlinePool(
                self._inline_sqlite_engine(parsed.database, 0, self.sqlite_synchronous)
            )
            self._write_lock = asyncio.Lock()
            self._process_lock = _ProcessLock(parsed.database + ".writelock")
        elif self.dialect == "sqlite":
            self._reader = self._sqlite_engine(url, False, self.sqlite_synchronous)
            self._writer = self._sqlite_engine(url, True, self.sqlite_synchronous)
        else:
            connect_args: dict[str, Any] = {}
            if schema:
                connect_args["server_settings"] = {"search_path": schema}
            self._reader = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                connect_args=connect_args,
                pool_pre_ping=True,
            )
            self._writer = self._reader

    @staticmethod
    def _inline_sqlite_engine(path: str, busy_timeout_ms: int, synchronous: str) -> Engine:
        # No overflow limit: a checkout that had to wait would block the event loop. Connections
        # are held only while a transaction's statements run, so few are ever open at once.
        return create_engine(
            URL.create("sqlite+pysqlite", database=path),
            creator=partial(_sqlite_connect, path, busy_timeout_ms, synchronous),
            poolclass=QueuePool,
            pool_size=20,
            max_overflow=-1,
        )

    @staticmethod
    def _sqlite_engine(url: str, immediate: bool, synchronous: str) -> AsyncEngine:
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A short read-only transaction."""
        if self._inline_reader is not None:
            sync = self._inline_reader.take()
            try:
                _driver(sync).execute("BEGIN")
                with sync.begin():
                    yield cast(AsyncConnection, InlineConnection(sync))
            finally:
                self._inline_reader.give(sync)
            return
        assert self._reader is not None
        async with self._reader.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on any error."""
        if self._write_lock is None:
            assert self._writer is not None
            async with self._writer.connect() as conn, conn.begin():
                yield conn
            return
        assert self._process_lock is not None
        assert self._inline_writer is not None
        async with self._write_lock:
            await self._process_lock.acquire()
            try:
                sync = self._inline_writer.take()
                try:
                    await _begin_immediate(_driver(sync))
                    with sync.begin():
                        yield cast(AsyncConnection, InlineConnection(sync))
                finally:
                    self._inline_writer.give(sync)
            finally:
                self._process_lock.release()

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        if self._process_lock is not None:
            # Several processes may start at once. Alembic commits after each revision on SQLite
            # (its DDL is not transactional there), so SQLite's own locks would let a second
            # process in between two revisions; the processes' write lock is held throughout.
            await self._process_lock.acquire(max_wait=_MIGRATION_WAIT)
            engine = self._sqlite_engine(self.url, True, self.sqlite_synchronous)
            try:
                async with engine.connect() as conn:
                    await conn.run_sync(_upgrade, self.schema)
                    await conn.commit()
            finally:
                await engine.dispose()
                self._process_lock.release()
            return
        assert self._writer is not None
        async with self._writer.connect() as conn:
            if self.dialect == "postgresql":
                # Several processes may start at once: one migrates, the others wait.
                await conn.exec_driver_sql("SELECT pg_advisory_lock(7283010)")
            try:
                await conn.run_sync(_upgrade, self.schema)
                await conn.commit()
            finally:
                if self.dialect == "postgresql":
                    await conn.exec_driver_sql("SELECT pg_advisory_unlock(7283010)")
                    await conn.commit()

    async def close(self) -> None:
        if self._process_lock is not None:
            self._process_lock.close()
        for pool in (self._inline_reader, self._inline_writer):
            if pool is not None:
                pool.dispose()
        if self._reader is not None:
            await self._reader.dispose()
        if self._writer is not None and self._writer is not self._reader:
            await self._writer.dispose()


def alembic_config(connection: Any = None, schema: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    return cfg


def _upgrade(sync_conn: Any, schema: str | None) -> None:
    command.upgrade(alembic_config(sync_conn, schema), "head")
