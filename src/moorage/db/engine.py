"""Connections: one ``Database`` per process, with separate read and write transactions.

SQLite (the embedded default) runs in WAL mode; write transactions start with
``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of failing
when a read lock cannot be upgraded. PostgreSQL runs at READ COMMITTED with the
statements written to be safe under concurrency (``ON CONFLICT`` upserts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """The metadata database of one process."""

    def __init__(self, url: str, schema: str | None = None, pool_size: int = 10) -> None:
        self.url = url
        self.schema = schema
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._reader = self._sqlite_engine(url, immediate=False)
            self._writer = self._sqlite_engine(url, immediate=True)
        else:
            connect_args: dict[str, Any] = {}
            if schema:
                connect_args["server_settings"] = {"search_path": schema}
            self._reader = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size * 2, connect_args=connect_args,
                pool_pre_ping=True,
            )
            self._writer = self._reader

    @staticmethod
    def _sqlite_engine(url: str, immediate: bool) -> AsyncEngine:
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
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
        async with self._reader.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on any error."""
        async with self._writer.connect() as conn, conn.begin():
            yield conn

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
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
        await self._reader.dispose()
        if self._writer is not self._reader:
            await self._writer.dispose()


def alembic_config(connection: Any = None, schema: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    return cfg


def _upgrade(sync_conn: Any, schema: str | None) -> None:
    command.upgrade(alembic_config(sync_conn, schema), "head")
