"""Queries over the vulnerability database: records, their package index, and the imports."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import TextualSelect, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.tables import vulndb_imports, vulnerabilities, vulnerability_packages

_CHUNK = 400  # bound parameters per statement stay far below SQLite's and asyncpg's limits


@dataclass(frozen=True, slots=True)
class ImportRow:
    id: int
    version: str
    imported_at: dt.datetime
    counts: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    id: str
    modified: dt.datetime
    record: str  # JSON


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def modified_times(conn: AsyncConnection) -> dict[str, dt.datetime]:
    """Every record's ``modified``, by id."""
    result = await conn.execute(select(vulnerabilities.c.id, vulnerabilities.c.modified))
    return {row.id: _aware(row.modified) for row in result}


async def delete_records(conn: AsyncConnection, ids: Sequence[str]) -> None:
    for chunk in _chunks(ids):
        await conn.execute(delete(vulnerability_packages).where(vulnerability_packages.c.vuln_id.in_(chunk)))
        await conn.execute(delete(vulnerabilities).where(vulnerabilities.c.id.in_(chunk)))


async def insert_records(
    conn: AsyncConnection, records: Sequence[dict[str, Any]], packages: Sequence[dict[str, Any]]
) -> None:
    """Rows for ``vulnerabilities`` and ``vulnerability_packages`` (executemany, in chunks)."""
    for chunk in _chunks(records, 1000):
        await conn.execute(vulnerabilities.insert(), list(chunk))
    for chunk in _chunks(packages, 2000):
        await conn.execute(vulnerability_packages.insert(), list(chunk))


async def content_version(conn: AsyncConnection) -> str:
    """A digest of every (id, modified, withdrawn): equal databases have equal versions."""
    digest = hashlib.sha256()
    result = await conn.execute(
        select(vulnerabilities.c.id, vulnerabilities.c.modified, vulnerabilities.c.withdrawn).order_by(
            vulnerabilities.c.id
        )
    )
    for row in result:
        withdrawn = _aware(row.withdrawn).isoformat() if row.withdrawn is not None else ""
        digest.update(f"{row.id}\t{_aware(row.modified).isoformat()}\t{withdrawn}\n".encode())
    return "sha256:" + digest.hexdigest()


async def add_import(
    conn: AsyncConnection, version: str, imported_at: dt.datetime, counts: dict[str, Any]
) -> int:
    result = await conn.execute(
        vulndb_imports.insert()
        .values(version=version, imported_at=imported_at, counts=json.dumps(counts, sort_keys=True))
        .returning(vulndb_imports.c.id)
    )
    return int(result.scalar_one())


async def latest_import(conn: AsyncConnection) -> ImportRow | None:
    row = (await conn.execute(select(vulndb_imports).order_by(vulndb_imports.c.id.desc()).limit(1))).first()
    if row is None:
        return None
    return ImportRow(row.id, row.version, _aware(row.imported_at), json.loads(row.counts))


async def records_per_ecosystem(conn: AsyncConnection) -> dict[str, int]:
    """Records in force (not withdrawn) per ecosystem as the data names it (``Debian:11``)."""
    query = (
        select(
            vulnerability_packages.c.ecosystem, func.count(func.distinct(vulnerability_packages.c.vuln_id))
        )
        .join(vulnerabilities, vulnerabilities.c.id == vulnerability_packages.c.vuln_id)
        .where(vulnerabilities.c.withdrawn.is_(None))
        .group_by(vulnerability_packages.c.ecosystem)
        .order_by(vulnerability_packages.c.ecosystem)
    )
    return {ecosystem: int(count) for ecosystem, count in await conn.execute(query)}


async def total_records(conn: AsyncConnection) -> tuple[int, int]:
    """(records in force, withdrawn records)."""
    total = (await conn.execute(select(func.count()).select_from(vulnerabilities))).scalar_one()
    withdrawn = (
        await conn.execute(
            select(func.count()).select_from(vulnerabilities).where(vulnerabilities.c.withdrawn.is_not(None))
        )
    ).scalar_one()
    return int(total) - int(withdrawn), int(withdrawn)


@lru_cache(maxsize=16)
def _candidates_statement(size: int) -> TextualSelect:
    """Records in force naming any of ``size`` (ecosystem, name) keys, bound as ``e<i>`` / ``n<i>``.

    The keys are a VALUES table joined on the (ecosystem, name) index: SQLite plans a row-value
    ``IN (...)`` as a scan of the whole package index per statement (4x slower on the shared data,
    growing with the database), the join as one index lookup per key. Plain SQL, built once per
    size: a SQLAlchemy ``values()`` construct was compiled anew for every call, which cost more
    than the query.
    """
    rows = ", ".join(f"(:e{i}, :n{i})" for i in range(size))
    # Only numbered placeholders are interpolated: the keys themselves are bound parameters.
    sql = (
        f"WITH wanted (ecosystem, name) AS (VALUES {rows}) "  # noqa: S608
        "SELECT v.id, v.modified, v.record FROM vulnerabilities AS v "
        "WHERE v.withdrawn IS NULL AND v.id IN ("
        "SELECT DISTINCT p.vuln_id FROM vulnerability_packages AS p "
        "JOIN wanted AS w ON p.ecosystem = w.ecosystem AND p.name = w.name)"
    )
    return text(sql).columns(vulnerabilities.c.id, vulnerabilities.c.modified, vulnerabilities.c.record)


async def candidates(conn: AsyncConnection, keys: Sequence[tuple[str, str]]) -> list[StoredRecord]:
    """Records in force naming any of ``keys`` ((ecosystem, normalized name)), each once."""
    found: dict[str, StoredRecord] = {}
    for chunk in _chunks(sorted(set(keys)), 200):
        params = {
            f"{kind}{i}": value for i, key in enumerate(chunk) for kind, value in zip("en", key, strict=True)
        }
        for row in await conn.execute(_candidates_statement(len(chunk)), params):
            found.setdefault(row.id, StoredRecord(row.id, _aware(row.modified), row.record))
    return [found[key] for key in sorted(found)]
