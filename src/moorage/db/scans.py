"""Queries for scans: per-layer inventories, the scan queue (pending rows), findings, overrides."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.content import _insert
from moorage.db.tables import (
    layer_inventories,
    repositories,
    repository_settings,
    scan_findings,
    scans,
    vulnerability_overrides,
)

PENDING, SCANNING, COMPLETED, FAILED = "pending", "scanning", "completed", "failed"


@dataclass(frozen=True, slots=True)
class ScanRow:
    id: int
    repository_id: int
    repository: str
    digest: str
    status: str
    reason: str | None
    vulndb_version: str | None
    queued_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int


@dataclass(frozen=True, slots=True)
class FindingRow:
    vuln_id: str
    aliases: list[str]
    severity: str | None
    score: float | None
    package: str
    ecosystem: str
    version: str
    fixed_versions: list[str]
    layer: str | None
    path: str | None
    summary: str | None
    purl: str | None


@dataclass(frozen=True, slots=True)
class OverrideRow:
    vuln_id: str
    package: str
    note: str | None
    created_by: str | None
    created_at: dt.datetime


_SCAN_COLUMNS = (
    scans.c.id,
    scans.c.repository_id,
    repositories.c.name.label("repository"),
    scans.c.digest,
    scans.c.status,
    scans.c.reason,
    scans.c.vulndb_version,
    scans.c.queued_at,
    scans.c.started_at,
    scans.c.finished_at,
    scans.c.attempts,
)


def _scan_query() -> Any:
    return select(*_SCAN_COLUMNS).select_from(
        scans.join(repositories, repositories.c.id == scans.c.repository_id)
    )


def _row(r: Any) -> ScanRow:
    return ScanRow(**{k: getattr(r, k) for k in ScanRow.__slots__})


# -- layer inventories --------------------------------------------------------------------
async def layer_inventories_of(conn: AsyncConnection, digests: Sequence[str]) -> dict[str, str]:
    if not digests:
        return {}
    rows = await conn.execute(
        select(layer_inventories.c.digest, layer_inventories.c.inventory).where(
            layer_inventories.c.digest.in_(list(set(digests)))
        )
    )
    return {r.digest: r.inventory for r in rows}


async def store_layer_inventory(conn: AsyncConnection, digest: str, inventory: str, now: dt.datetime) -> None:
    stmt = _insert(conn, layer_inventories).values(digest=digest, inventory=inventory, created_at=now)
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["digest"]))  # type: ignore[attr-defined]


# -- the queue ----------------------------------------------------------------------------
async def enqueue(conn: AsyncConnection, repo_id: int, digest: str, now: dt.datetime, force: bool) -> None:
    """A pending scan for the manifest, unless one is queued or running; ``force`` re-queues a finished one."""
    stmt = _insert(conn, scans).values(
        repository_id=repo_id, digest=digest, status=PENDING, queued_at=now, attempts=0
    )
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["repository_id", "digest"]))  # type: ignore[attr-defined]
    if force:
        await conn.execute(
            update(scans)
            .where(
                scans.c.repository_id == repo_id,
                scans.c.digest == digest,
                scans.c.status.in_([COMPLETED, FAILED]),
            )
            .values(status=PENDING, reason=None, queued_at=now, started_at=None, finished_at=None)
        )


async def pending_ids(conn: AsyncConnection, limit: int) -> list[int]:
    rows = await conn.execute(
        select(scans.c.id)
        .where(scans.c.status == PENDING)
        .order_by(scans.c.queued_at, scans.c.id)
        .limit(limit)
    )
    return [r.id for r in rows]


async def claim(conn: AsyncConnection, scan_id: int, now: dt.datetime) -> bool:
    """Take a pending scan for this worker; ``False`` when another worker (or process) took it."""
    result = await conn.execute(
        update(scans)
        .where(scans.c.id == scan_id, scans.c.status == PENDING)
        .values(status=SCANNING, started_at=now, attempts=scans.c.attempts + 1)
    )
    return bool(result.rowcount == 1)


async def requeue_stale(conn: AsyncConnection, started_before: dt.datetime) -> int:
    """Scans left ``scanning`` by a worker that stopped (crash, restart) go back to the queue."""
    result = await conn.execute(
        update(scans)
        .where(scans.c.status == SCANNING, scans.c.started_at < started_before)
        .values(status=PENDING, started_at=None)
    )
    return int(result.rowcount or 0)


async def scan_by_id(conn: AsyncConnection, scan_id: int) -> ScanRow | None:
    row = (await conn.execute(_scan_query().where(scans.c.id == scan_id))).first()
    return _row(row) if row else None


async def scans_of(conn: AsyncConnection, repo_id: int, digests: Sequence[str]) -> dict[str, ScanRow]:
    if not digests:
        return {}
    rows = await conn.execute(
        _scan_query().where(scans.c.repository_id == repo_id, scans.c.digest.in_(list(set(digests))))
    )
    return {r.digest: _row(r) for r in rows}


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    """How many scans are pending, scanning, completed and failed."""
    rows = await conn.execute(select(scans.c.status, func.count()).group_by(scans.c.status))
    counts = dict.fromkeys((PENDING, SCANNING, COMPLETED, FAILED), 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


async def completed_scans(conn: AsyncConnection) -> list[ScanRow]:
    rows = await conn.execute(_scan_query().where(scans.c.status == COMPLETED).order_by(scans.c.id))
    return [_row(r) for r in rows]


async def finish(
    conn: AsyncConnection,
    scan_id: int,
    status: str,
    reason: str | None,
    vulndb_version: str | None,
    findings: Sequence[dict[str, Any]],
    now: dt.datetime,
) -> None:
    await conn.execute(delete(scan_findings).where(scan_findings.c.scan_id == scan_id))
    if findings:
        await conn.execute(scan_findings.insert(), [{**f, "scan_id": scan_id} for f in findings])
    await conn.execute(
        update(scans)
        .where(scans.c.id == scan_id)
        .values(status=status, reason=reason, vulndb_version=vulndb_version, finished_at=now)
    )


async def findings_of(conn: AsyncConnection, scan_ids: Sequence[int]) -> dict[int, list[FindingRow]]:
    out: dict[int, list[FindingRow]] = {i: [] for i in scan_ids}
    if not scan_ids:
        return out
    rows = await conn.execute(
        select(scan_findings).where(scan_findings.c.scan_id.in_(list(scan_ids))).order_by(scan_findings.c.id)
    )
    for r in rows:
        out[r.scan_id].append(
            FindingRow(
                vuln_id=r.vuln_id,
                aliases=json.loads(r.aliases),
                severity=r.severity,
                score=r.score,
                package=r.package,
                ecosystem=r.ecosystem,
                version=r.version,
                fixed_versions=json.loads(r.fixed_versions),
                layer=r.layer,
                path=r.path,
                summary=r.summary,
                purl=r.purl,
            )
        )
    return out


# -- overrides and settings ---------------------------------------------------------------
async def overrides_of(conn: AsyncConnection, repo_id: int) -> list[OverrideRow]:
    rows = await conn.execute(
        select(vulnerability_overrides)
        .where(vulnerability_overrides.c.repository_id == repo_id)
        .order_by(vulnerability_overrides.c.id)
    )
    return [OverrideRow(r.vuln_id, r.package, r.note, r.created_by, r.created_at) for r in rows]


async def add_override(
    conn: AsyncConnection,
    repo_id: int,
    vuln_id: str,
    package: str,
    note: str | None,
    by: str | None,
    now: dt.datetime,
) -> None:
    await conn.execute(
        delete(vulnerability_overrides).where(
            vulnerability_overrides.c.repository_id == repo_id,
            vulnerability_overrides.c.vuln_id == vuln_id,
            vulnerability_overrides.c.package == package,
        )
    )
    await conn.execute(
        vulnerability_overrides.insert().values(
            repository_id=repo_id, vuln_id=vuln_id, package=package, note=note, created_by=by, created_at=now
        )
    )


async def remove_override(conn: AsyncConnection, repo_id: int, vuln_id: str, package: str) -> bool:
    result = await conn.execute(
        delete(vulnerability_overrides).where(
            vulnerability_overrides.c.repository_id == repo_id,
            vulnerability_overrides.c.vuln_id == vuln_id,
            vulnerability_overrides.c.package == package,
        )
    )
    return bool(result.rowcount)


_SCAN_ON_PUSH = select(repository_settings.c.scan_on_push).where(
    repository_settings.c.repository_id == bindparam("repo_id")
)


async def scan_on_push(conn: AsyncConnection, repo_id: int) -> bool | None:
    """The repository's own setting; ``None`` when it follows the global default."""
    return (await conn.execute(_SCAN_ON_PUSH, {"repo_id": repo_id})).scalar()
