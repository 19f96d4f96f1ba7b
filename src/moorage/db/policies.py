"""Queries for promotion and pruning policies, and for the tags a scanned image belongs to."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.events import aware
from moorage.db.tables import manifest_children, manifests, promotion_policies, pruning_policies, repositories

#: How far up from an image a scan event looks for tagged indexes (index of index of …).
MAX_DEPTH = 4


@dataclass(frozen=True, slots=True)
class PromotionPolicyRow:
    id: int
    repository_id: int
    repository: str
    target: str
    rules: list[dict[str, Any]]
    tag_template: str
    enabled: bool
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class PruningPolicyRow:
    id: int
    repository_id: int
    repository: str
    rules: list[dict[str, Any]]
    keep_newest: int | None
    max_tags: int | None
    cron: str | None
    enabled: bool
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


def _promotion(r: Any) -> PromotionPolicyRow:
    return PromotionPolicyRow(
        r.id,
        r.repository_id,
        r.repository,
        r.target,
        json.loads(r.rules),
        r.tag_template,
        bool(r.enabled),
        r.created_by,
        aware(r.created_at),
        aware(r.updated_at),
    )


def _pruning(r: Any) -> PruningPolicyRow:
    return PruningPolicyRow(
        r.id,
        r.repository_id,
        r.repository,
        json.loads(r.rules),
        r.keep_newest,
        r.max_tags,
        r.cron,
        bool(r.enabled),
        r.created_by,
        aware(r.created_at),
        aware(r.updated_at),
    )


def _select(table: Any) -> Any:
    return select(table, repositories.c.name.label("repository")).select_from(
        table.join(repositories, repositories.c.id == table.c.repository_id)
    )


def _values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if k == "rules" else v for k, v in values.items()}


# -- promotion -------------------------------------------------------------------------------
async def insert_promotion(conn: AsyncConnection, repo_id: int, values: dict[str, Any]) -> int:
    result = await conn.execute(
        insert(promotion_policies)
        .values(repository_id=repo_id, **_values(values))
        .returning(promotion_policies.c.id)
    )
    return int(result.scalar_one())


async def promotion_policy(conn: AsyncConnection, policy_id: int) -> PromotionPolicyRow | None:
    row = (
        await conn.execute(_select(promotion_policies).where(promotion_policies.c.id == policy_id))
    ).first()
    return _promotion(row) if row else None


async def promotion_policies_of(
    conn: AsyncConnection, repo_id: int, enabled_only: bool = False
) -> list[PromotionPolicyRow]:
    query = _select(promotion_policies).where(promotion_policies.c.repository_id == repo_id)
    if enabled_only:
        query = query.where(promotion_policies.c.enabled.is_(True))
    return [_promotion(r) for r in await conn.execute(query.order_by(promotion_policies.c.id))]


async def update_promotion(conn: AsyncConnection, policy_id: int, values: dict[str, Any]) -> None:
    await conn.execute(
        update(promotion_policies).where(promotion_policies.c.id == policy_id).values(**_values(values))
    )


async def delete_promotion(conn: AsyncConnection, policy_id: int) -> bool:
    result = await conn.execute(delete(promotion_policies).where(promotion_policies.c.id == policy_id))
    return bool(result.rowcount)


# -- pruning ---------------------------------------------------------------------------------
async def insert_pruning(conn: AsyncConnection, repo_id: int, values: dict[str, Any]) -> int:
    result = await conn.execute(
        insert(pruning_policies)
        .values(repository_id=repo_id, **_values(values))
        .returning(pruning_policies.c.id)
    )
    return int(result.scalar_one())


async def pruning_policy(conn: AsyncConnection, policy_id: int) -> PruningPolicyRow | None:
    row = (await conn.execute(_select(pruning_policies).where(pruning_policies.c.id == policy_id))).first()
    return _pruning(row) if row else None


async def pruning_policies_of(
    conn: AsyncConnection, repo_id: int, enabled_only: bool = False
) -> list[PruningPolicyRow]:
    query = _select(pruning_policies).where(pruning_policies.c.repository_id == repo_id)
    if enabled_only:
        query = query.where(pruning_policies.c.enabled.is_(True))
    return [_pruning(r) for r in await conn.execute(query.order_by(pruning_policies.c.id))]


async def update_pruning(conn: AsyncConnection, policy_id: int, values: dict[str, Any]) -> None:
    await conn.execute(
        update(pruning_policies).where(pruning_policies.c.id == policy_id).values(**_values(values))
    )


async def delete_pruning(conn: AsyncConnection, policy_id: int) -> bool:
    result = await conn.execute(delete(pruning_policies).where(pruning_policies.c.id == policy_id))
    return bool(result.rowcount)


# -- what contains an image --------------------------------------------------------------------
async def containing(conn: AsyncConnection, repo_id: int, digest: str) -> list[str]:
    """``digest`` and every manifest of the repository that holds it, directly or through indexes.

    A scan is of one image; the multi-arch images and applications it belongs to are found
    through ``manifest_children``, up to ``MAX_DEPTH`` levels.
    """
    found = [digest]
    frontier: Sequence[str] = [digest]
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        query = (
            select(manifests.c.digest)
            .select_from(manifest_children.join(manifests, manifests.c.id == manifest_children.c.manifest_id))
            .where(manifests.c.repository_id == repo_id, manifest_children.c.child_digest.in_(list(frontier)))
        )
        parents = [d for d in (await conn.execute(query)).scalars() if d not in found]
        parents = list(dict.fromkeys(parents))
        found.extend(parents)
        frontier = parents
    return found


async def lock_promotion(conn: AsyncConnection, policy_id: int) -> bool:
    """Hold the policy's row until the transaction ends (PostgreSQL; SQLite writers are serial anyway)."""
    found = await conn.execute(
        select(promotion_policies.c.id).where(promotion_policies.c.id == policy_id).with_for_update()
    )
    return found.first() is not None
