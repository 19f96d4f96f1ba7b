"""Queries for garbage collection: the reference fence, the mark's reads, the sweep's
conditional deletes, and the ``gc_runs`` records.

The sweep's deletes re-check, in the deleting statement itself, that a row is still
unreferenced and older than the cutoff; the mark only proposes candidates. See
``services/gc.py`` for the whole protocol.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.events import aware
from moorage.db.tables import (
    blobs,
    gc_runs,
    layer_inventories,
    manifest_blobs,
    manifest_children,
    manifests,
    repositories,
    repository_blobs,
    scans,
    tags,
)

#: PostgreSQL advisory lock key of the reference fence ("moorage gc").
FENCE_KEY = 7283011
#: Rows per conditional DELETE (bounded IN lists; short exclusive sections).
BATCH = 500

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"


# -- the reference fence ------------------------------------------------------------------
async def hold_references(conn: AsyncConnection) -> None:
    """Taken first by every write transaction that creates a reference to existing content
    (a manifest push, a blob upload's publication, a mount).

    On PostgreSQL it is a shared transaction-level advisory lock: pushes do not wait for each
    other, but a sweep transaction (``exclude_references``) waits for the pushes in flight to
    commit, and pushes wait for the sweep. SQLite write transactions are serialised already
    (``BEGIN IMMEDIATE`` under a process-wide lock), so nothing is needed there.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SELECT pg_advisory_xact_lock_shared({FENCE_KEY})"))


async def exclude_references(conn: AsyncConnection) -> None:
    """Taken first by each sweep transaction: no push transaction runs alongside it."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SELECT pg_advisory_xact_lock({FENCE_KEY})"))


# -- mark ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ManifestNode:
    id: int
    digest: str
    subject_digest: str | None
    pushed_at: dt.datetime
    size: int


@dataclass
class RepositoryGraph:
    """What one repository holds and how it refers to itself, as the mark reads it."""

    id: int
    name: str
    manifests: list[ManifestNode]
    children: dict[int, list[str]]  # manifest id -> child digests
    tagged: set[int]
    blobs_of: dict[int, set[str]]  # manifest id -> blob digests
    links: dict[str, dt.datetime]  # linked digest -> when it was linked


async def repository_ids(conn: AsyncConnection) -> list[tuple[int, str]]:
    rows = await conn.execute(select(repositories.c.id, repositories.c.name).order_by(repositories.c.id))
    return [(r[0], r[1]) for r in rows]


async def repository_graph(conn: AsyncConnection, repo_id: int, name: str) -> RepositoryGraph:
    nodes = [
        ManifestNode(r.id, r.digest, r.subject_digest, aware(r.pushed_at), r.size)
        for r in await conn.execute(
            select(
                manifests.c.id,
                manifests.c.digest,
                manifests.c.subject_digest,
                manifests.c.pushed_at,
                manifests.c.size,
            ).where(manifests.c.repository_id == repo_id)
        )
    ]
    children: dict[int, list[str]] = {}
    for parent, child in await conn.execute(
        select(manifest_children.c.manifest_id, manifest_children.c.child_digest)
        .select_from(manifest_children.join(manifests, manifests.c.id == manifest_children.c.manifest_id))
        .where(manifests.c.repository_id == repo_id)
    ):
        children.setdefault(parent, []).append(child)
    tagged = set(
        (await conn.execute(select(tags.c.manifest_id).where(tags.c.repository_id == repo_id))).scalars()
    )
    blobs_of: dict[int, set[str]] = {}
    for mid, digest in await conn.execute(
        select(manifest_blobs.c.manifest_id, manifest_blobs.c.digest)
        .select_from(manifest_blobs.join(manifests, manifests.c.id == manifest_blobs.c.manifest_id))
        .where(manifests.c.repository_id == repo_id)
    ):
        blobs_of.setdefault(mid, set()).add(digest)
    links = {
        r[0]: aware(r[1])
        for r in await conn.execute(
            select(repository_blobs.c.digest, repository_blobs.c.created_at).where(
                repository_blobs.c.repository_id == repo_id
            )
        )
    }
    return RepositoryGraph(repo_id, name, nodes, children, tagged, blobs_of, links)


async def old_blobs(conn: AsyncConnection, cutoff: dt.datetime) -> dict[str, int]:
    """Blob rows recorded before ``cutoff``, with their sizes."""
    rows = await conn.execute(select(blobs.c.digest, blobs.c.size).where(blobs.c.created_at < cutoff))
    return {d: s for d, s in rows}


async def link_counts(conn: AsyncConnection) -> dict[str, int]:
    """How many repositories link each linked digest."""
    rows = await conn.execute(
        select(repository_blobs.c.digest, func.count()).group_by(repository_blobs.c.digest)
    )
    return {d: n for d, n in rows}


async def existing_blobs(conn: AsyncConnection, digests: Sequence[str]) -> set[str]:
    """Those of ``digests`` that have a blob row."""
    found: set[str] = set()
    for chunk in _chunks(digests):
        found.update((await conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(chunk)))).scalars())
    return found


# -- sweep --------------------------------------------------------------------------------
def _chunks(items: Iterable[Any], size: int = BATCH) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_parent = manifests.alias("parent")
_subject = manifests.alias("subject")

_DELETE_MANIFESTS = (
    delete(manifests)
    .where(
        manifests.c.repository_id == bindparam("repo_id"),
        manifests.c.id.in_(bindparam("ids", expanding=True)),
        manifests.c.pushed_at < bindparam("cutoff"),
        ~exists().where(tags.c.manifest_id == manifests.c.id),
        ~exists()
        .select_from(manifest_children.join(_parent, _parent.c.id == manifest_children.c.manifest_id))
        .where(
            _parent.c.repository_id == manifests.c.repository_id,
            manifest_children.c.child_digest == manifests.c.digest,
        ),
        or_(
            manifests.c.subject_digest.is_(None),
            ~exists().where(
                _subject.c.repository_id == manifests.c.repository_id,
                _subject.c.digest == manifests.c.subject_digest,
            ),
        ),
    )
    .returning(manifests.c.id, manifests.c.digest, manifests.c.size)
)


async def delete_manifests(
    conn: AsyncConnection, repo_id: int, ids: Sequence[int], cutoff: dt.datetime
) -> list[tuple[int, str, int]]:
    """Delete those of ``ids`` that are, now, untagged, no present manifest's child, without a
    present subject, and pushed before ``cutoff``. One round: a candidate whose parent (or
    subject) is itself a candidate goes in a later round, once that parent is gone.
    Their blob references, child references and tags go with them (ON DELETE CASCADE)."""
    out: list[tuple[int, str, int]] = []
    for chunk in _chunks(ids):
        rows = await conn.execute(_DELETE_MANIFESTS, {"repo_id": repo_id, "ids": chunk, "cutoff": cutoff})
        out.extend((r[0], r[1], r[2]) for r in rows)
    return out


async def delete_scans(conn: AsyncConnection, repo_id: int, digests: Sequence[str]) -> int:
    """Scan records of manifests that are gone (a scan running now is left to finish)."""
    count = 0
    for chunk in _chunks(digests):
        result = await conn.execute(
            delete(scans).where(
                scans.c.repository_id == repo_id,
                scans.c.digest.in_(chunk),
                scans.c.status != "scanning",
                ~exists().where(manifests.c.repository_id == repo_id, manifests.c.digest == scans.c.digest),
            )
        )
        count += result.rowcount or 0
    return count


_DELETE_LINKS = (
    delete(repository_blobs)
    .where(
        repository_blobs.c.repository_id == bindparam("repo_id"),
        repository_blobs.c.digest.in_(bindparam("digests", expanding=True)),
        repository_blobs.c.created_at < bindparam("cutoff"),
        ~exists()
        .select_from(manifest_blobs.join(manifests, manifests.c.id == manifest_blobs.c.manifest_id))
        .where(
            manifests.c.repository_id == repository_blobs.c.repository_id,
            manifest_blobs.c.digest == repository_blobs.c.digest,
        ),
    )
    .returning(repository_blobs.c.digest)
)


async def delete_links(
    conn: AsyncConnection, repo_id: int, digests: Sequence[str], cutoff: dt.datetime
) -> list[str]:
    """Unlink those of ``digests`` no manifest of the repository references now, linked before ``cutoff``."""
    out: list[str] = []
    for chunk in _chunks(digests):
        rows = await conn.execute(_DELETE_LINKS, {"repo_id": repo_id, "digests": chunk, "cutoff": cutoff})
        out.extend(rows.scalars())
    return out


_DELETE_BLOBS = (
    delete(blobs)
    .where(
        blobs.c.digest.in_(bindparam("digests", expanding=True)),
        blobs.c.created_at < bindparam("cutoff"),
        ~exists().where(repository_blobs.c.digest == blobs.c.digest),
        ~exists().where(manifest_blobs.c.digest == blobs.c.digest),
    )
    .returning(blobs.c.digest, blobs.c.size)
)


async def delete_blobs(
    conn: AsyncConnection, digests: Sequence[str], cutoff: dt.datetime
) -> list[tuple[str, int]]:
    """Delete the rows of those of ``digests`` that no repository links and no manifest
    references now, recorded before ``cutoff``; their layer inventories (a scanner cache) too."""
    out: list[tuple[str, int]] = []
    for chunk in _chunks(digests):
        rows = await conn.execute(_DELETE_BLOBS, {"digests": chunk, "cutoff": cutoff})
        deleted = [(r[0], r[1]) for r in rows]
        if deleted:
            await conn.execute(
                delete(layer_inventories).where(layer_inventories.c.digest.in_([d for d, _ in deleted]))
            )
        out.extend(deleted)
    return out


async def blob_exists(conn: AsyncConnection, digest: str) -> bool:
    return (await conn.execute(select(blobs.c.digest).where(blobs.c.digest == digest))).first() is not None


# -- runs ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GcRunRow:
    id: int
    job_id: int | None
    status: str
    dry_run: bool
    trigger: str
    requested_by: str | None
    grace_seconds: float
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    manifests_deleted: int
    blob_links_deleted: int
    blobs_deleted: int
    bytes_freed: int
    summary: dict[str, Any] | None
    error: str | None


def _run(r: Any) -> GcRunRow:
    return GcRunRow(
        r.id,
        r.job_id,
        r.status,
        bool(r.dry_run),
        r.trigger,
        r.requested_by,
        float(r.grace_seconds),
        aware(r.created_at),
        aware(r.started_at) if r.started_at else None,
        aware(r.finished_at) if r.finished_at else None,
        r.manifests_deleted,
        r.blob_links_deleted,
        r.blobs_deleted,
        r.bytes_freed,
        json.loads(r.summary) if r.summary else None,
        r.error,
    )


async def insert_run(
    conn: AsyncConnection,
    *,
    dry_run: bool,
    trigger: str,
    requested_by: str | None,
    grace_seconds: float,
    now: dt.datetime,
    status: str = QUEUED,
) -> int:
    result = await conn.execute(
        insert(gc_runs)
        .values(
            status=status,
            dry_run=dry_run,
            trigger=trigger,
            requested_by=requested_by,
            grace_seconds=grace_seconds,
            created_at=now,
            started_at=now if status == RUNNING else None,
            manifests_deleted=0,
            blob_links_deleted=0,
            blobs_deleted=0,
            bytes_freed=0,
        )
        .returning(gc_runs.c.id)
    )
    return int(result.scalar_one())


async def set_job(conn: AsyncConnection, run_id: int, job_id: int) -> None:
    await conn.execute(update(gc_runs).where(gc_runs.c.id == run_id).values(job_id=job_id))


async def start_run(conn: AsyncConnection, run_id: int, now: dt.datetime, job_id: int) -> bool:
    """queued -> running; or running again when its job is run again (its process stopped
    mid-run: what it swept is gone, the rest is swept now). ``False`` otherwise."""
    result = await conn.execute(
        update(gc_runs)
        .where(
            gc_runs.c.id == run_id,
            or_(gc_runs.c.status == QUEUED, and_(gc_runs.c.status == RUNNING, gc_runs.c.job_id == job_id)),
        )
        .values(status=RUNNING, started_at=now)
    )
    return bool(result.rowcount)


async def finish_run(
    conn: AsyncConnection,
    run_id: int,
    *,
    status: str,
    now: dt.datetime,
    manifests_deleted: int,
    blob_links_deleted: int,
    blobs_deleted: int,
    bytes_freed: int,
    summary: dict[str, Any],
    error: str | None,
) -> None:
    await conn.execute(
        update(gc_runs)
        .where(gc_runs.c.id == run_id)
        .values(
            status=status,
            finished_at=now,
            manifests_deleted=manifests_deleted,
            blob_links_deleted=blob_links_deleted,
            blobs_deleted=blobs_deleted,
            bytes_freed=bytes_freed,
            summary=json.dumps(summary, sort_keys=True),
            error=error,
        )
    )


async def get_run(conn: AsyncConnection, run_id: int) -> GcRunRow | None:
    row = (await conn.execute(select(gc_runs).where(gc_runs.c.id == run_id))).first()
    return _run(row) if row else None


async def list_runs(conn: AsyncConnection, offset: int, limit: int) -> tuple[list[GcRunRow], int]:
    total = (await conn.execute(select(func.count()).select_from(gc_runs))).scalar_one()
    rows = await conn.execute(select(gc_runs).order_by(gc_runs.c.id.desc()).offset(offset).limit(limit))
    return [_run(r) for r in rows], int(total)


async def active_run(conn: AsyncConnection, started_after: dt.datetime) -> GcRunRow | None:
    """A run queued or started since ``started_after`` and not finished (older ones are taken as lost)."""
    row = (
        await conn.execute(
            select(gc_runs)
            .where(
                or_(
                    and_(gc_runs.c.status == QUEUED, gc_runs.c.created_at >= started_after),
                    and_(gc_runs.c.status == RUNNING, gc_runs.c.started_at >= started_after),
                )
            )
            .order_by(gc_runs.c.id)
            .limit(1)
        )
    ).first()
    return _run(row) if row else None
