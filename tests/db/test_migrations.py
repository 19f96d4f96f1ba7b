"""The Alembic migrations build exactly the schema of ``moorage.db.tables``, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from tests.conftest import Backend, _pg_schema, make_settings

from moorage.db.engine import Database, alembic_config
from moorage.db.tables import metadata, repositories


@pytest.fixture
async def db(tmp_path: Path, backend: Backend) -> AsyncIterator[Database]:
    settings = make_settings(tmp_path / "data", backend)
    database = Database(settings.resolved_database_url, schema=settings.database_schema)
    try:
        yield database
    finally:
        await database.close()


def _diffs(sync_conn: Any) -> list[Any]:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _snapshot(sync_conn: Any) -> dict[str, Any]:
    """Everything about the schema that a migration could change."""
    insp = inspect(sync_conn)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)
            ),
            "uniques": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
        }
    return out


def _current_revision(sync_conn: Any) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_migrations_produce_exactly_the_tables(db: Database) -> None:
    await db.migrate()
    async with db.read() as conn:
        diffs = await conn.run_sync(_diffs)
        snapshot = await conn.run_sync(_snapshot)
        revision = await conn.run_sync(_current_revision)
    assert diffs == [], f"migrations and db/tables.py differ: {diffs}"
    assert set(snapshot) == {*metadata.tables, "alembic_version"}
    for name, table in metadata.tables.items():
        assert [c[0] for c in snapshot[name]["columns"]] == [c.name for c in table.columns], name
        assert [c[2] for c in snapshot[name]["columns"]] == [c.nullable for c in table.columns], name
    assert revision == _head()


async def test_the_comparison_notices_a_drift(db: Database) -> None:
    """The check above can fail: an index dropped behind Alembic's back is reported."""
    await db.migrate()
    async with db.write() as conn:
        await conn.execute(text("DROP INDEX ix_tags_manifest_id"))
    async with db.read() as conn:
        diffs = await conn.run_sync(_diffs)
    assert any(d[0] == "add_index" and d[1].name == "ix_tags_manifest_id" for d in diffs), diffs


async def test_migrating_twice_is_a_no_op(db: Database) -> None:
    await db.migrate()
    now = dt.datetime.now(dt.UTC)
    async with db.write() as conn:
        await conn.execute(repositories.insert().values(name="lab/kept", created_at=now))
        before = await conn.run_sync(_snapshot)
    await db.migrate()
    await db.migrate()
    async with db.read() as conn:
        after = await conn.run_sync(_snapshot)
        diffs = await conn.run_sync(_diffs)
        names = list((await conn.execute(select(repositories.c.name))).scalars())
        versions = list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    assert after == before
    assert diffs == []
    assert names == ["lab/kept"]
    assert versions == [_head()]


async def test_a_second_database_object_sees_the_migrated_schema(
    db: Database, tmp_path: Path, backend: Backend
) -> None:
    """Migrating from another process (a second ``Database``) finds nothing to do."""
    await db.migrate()
    settings = make_settings(tmp_path / "data", backend)
    other = Database(settings.resolved_database_url, schema=settings.database_schema)
    try:
        await other.migrate()
        async with other.read() as conn:
            assert await conn.run_sync(_diffs) == []
            assert await conn.run_sync(_current_revision) == _head()
    finally:
        await other.close()


async def test_postgres_schema_is_isolated(db: Database, backend: Backend) -> None:
    if backend.schema is None:
        pytest.skip("PostgreSQL only: tables go into the configured schema")
    await db.migrate()
    async with db.read() as conn:
        rows = await conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": backend.schema},
        )
        tables = set(rows.scalars())
    assert tables == {*metadata.tables, "alembic_version"}


_MIGRATE_WHEN_TOLD = """
import asyncio, os, sys, time
from moorage.db.engine import Database

url, schema, ready, go = sys.argv[1], sys.argv[2] or None, sys.argv[3], sys.argv[4]
database = Database(url, schema=schema)
open(ready, "w").close()  # imports done: wait for the others, then migrate at once
while not os.path.exists(go):
    time.sleep(0.001)

async def main() -> None:
    try:
        await database.migrate()
    finally:
        await database.close()

asyncio.run(main())
"""


def test_processes_starting_at_once_all_migrate_one_new_database(tmp_path: Path, backend: Backend) -> None:
    """Several processes migrating one new database together: each either migrates or waits for the
    one that does, none fails, and the schema ends whole at the head revision. (On SQLite, Alembic
    commits after every revision, so a lock held only per transaction let a second process in.)"""
    for attempt in range(3):
        schema = f"{backend.schema}_m{attempt}" if backend.schema else None
        settings = make_settings(tmp_path / f"data-{attempt}", backend, database_schema=schema)
        url = settings.resolved_database_url
        if schema:
            asyncio.run(_pg_schema("create", schema))
        try:
            _migrate_in_processes_at_once(url, schema, tmp_path / f"line-{attempt}", processes=4)
            asyncio.run(_assert_at_head(url, schema))
        finally:
            if schema:
                asyncio.run(_pg_schema("drop", schema))


def _migrate_in_processes_at_once(url: str, schema: str | None, line: Path, processes: int) -> None:
    line.mkdir()
    go = line / "go"
    started = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_WHEN_TOLD, url, schema or "", str(line / f"ready-{n}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for n in range(processes)
    ]
    deadline = time.monotonic() + 60
    while len(list(line.glob("ready-*"))) < processes:  # every process at the start line
        assert all(process.poll() is None for process in started), "a process died before migrating"
        assert time.monotonic() < deadline, "the processes did not reach the start line"
        time.sleep(0.01)
    go.touch()
    results = [(process.communicate(timeout=120)[0].decode(), process.returncode) for process in started]
    failures = [output[-2000:] for output, code in results if code != 0]
    assert failures == []


async def _assert_at_head(url: str, schema: str | None) -> None:
    database = Database(url, schema=schema)
    try:
        async with database.read() as conn:
            assert await conn.run_sync(_diffs) == []
            assert await conn.run_sync(_current_revision) == _head()
            versions = list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
        assert versions == [_head()]
    finally:
        await database.close()
