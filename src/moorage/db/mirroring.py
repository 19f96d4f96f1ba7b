"""Queries for push and pull mirrors (table ``mirrors``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.events import aware
from moorage.db.tables import manifests, mirrors, repositories, tags

PUSH, PULL = "push", "pull"


@dataclass(frozen=True, slots=True)
class MirrorRow:
    id: int
    repository: str  # the local repository's full name
    direction: str
    url: str
    remote_repository: str
    username: str | None
    password: str | None
    ca_certificate: str | None
    skip_verify: bool
    tag_template: str | None
    rules: str | None
    cron: str | None
    enabled: bool
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    last_status: str | None
    last_error: str | None
    last_run_at: dt.datetime | None
    last_job_id: int | None


_COLUMNS = (
    mirrors.c.id,
    repositories.c.name,
    mirrors.c.direction,
    mirrors.c.url,
    mirrors.c.remote_repository,
    mirrors.c.username,
    mirrors.c.password,
    mirrors.c.ca_certificate,
    mirrors.c.skip_verify,
    mirrors.c.tag_template,
    mirrors.c.rules,
    mirrors.c.cron,
    mirrors.c.enabled,
    mirrors.c.created_by,
    mirrors.c.created_at,
    mirrors.c.updated_at,
    mirrors.c.last_status,
    mirrors.c.last_error,
    mirrors.c.last_run_at,
    mirrors.c.last_job_id,
)
_FROM = mirrors.join(repositories, repositories.c.id == mirrors.c.repository_id)


def _row(r: Any) -> MirrorRow:
    values = list(r)
    values[8] = bool(values[8])
    values[12] = bool(values[12])
    for i in (14, 15):
        values[i] = aware(values[i])
    if values[18] is not None:
        values[18] = aware(values[18])
    return MirrorRow(*values)


async def insert_mirror(conn: AsyncConnection, repository_id: int, values: dict[str, Any]) -> int:
    result = await conn.execute(insert(mirrors).values(repository_id=repository_id, **values))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def update_mirror(conn: AsyncConnection, mirror_id: int, values: dict[str, Any]) -> None:
    await conn.execute(update(mirrors).where(mirrors.c.id == mirror_id).values(**values))


async def delete_mirror(conn: AsyncConnection, mirror_id: int) -> bool:
    result = await conn.execute(delete(mirrors).where(mirrors.c.id == mirror_id))
    return bool(result.rowcount == 1)


async def mirror(conn: AsyncConnection, mirror_id: int) -> MirrorRow | None:
    row = (await conn.execute(select(*_COLUMNS).select_from(_FROM).where(mirrors.c.id == mirror_id))).first()
    return _row(row) if row else None


async def mirrors_of(conn: AsyncConnection, repository: str, direction: str) -> list[MirrorRow]:
    rows = await conn.execute(
        select(*_COLUMNS)
        .select_from(_FROM)
        .where(repositories.c.name == repository, mirrors.c.direction == direction)
        .order_by(mirrors.c.id)
    )
    return [_row(r) for r in rows]


async def record_run(
    conn: AsyncConnection,
    mirror_id: int,
    status: str,
    error: str | None,
    at: dt.datetime,
    job_id: int | None,
) -> None:
    await conn.execute(
        update(mirrors)
        .where(mirrors.c.id == mirror_id)
        .values(last_status=status, last_error=error, last_run_at=at, last_job_id=job_id)
    )


async def tagged(conn: AsyncConnection, repository: str) -> list[tuple[str, str, dt.datetime]]:
    """``(tag, digest, pushed at)`` of every tag of a repository, by tag name."""
    rows = await conn.execute(
        select(tags.c.name, manifests.c.digest, tags.c.updated_at)
        .select_from(
            tags.join(manifests, manifests.c.id == tags.c.manifest_id).join(
                repositories, repositories.c.id == tags.c.repository_id
            )
        )
        .where(repositories.c.name == repository)
        .order_by(tags.c.name)
    )
    return [(r[0], r[1], aware(r[2])) for r in rows]


async def remote_repositories(
    conn: AsyncConnection, url: str, direction: str, exclude: int, limit: int
) -> list[str]:
    """Remote repositories of other mirrors on the same registry (to mount blobs from there)."""
    rows = await conn.execute(
        select(mirrors.c.remote_repository)
        .where(mirrors.c.url == url, mirrors.c.direction == direction, mirrors.c.id != exclude)
        .distinct()
        .order_by(mirrors.c.remote_repository)
        .limit(limit)
    )
    return [r[0] for r in rows]
