"""Whether each outbox consumer has anything configured to act on: one quick read each, so the
event dispatcher passes over events without a write transaction while nothing is configured."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.tables import mirrors, promotion_policies, pruning_policies, webhooks

_ANY_WEBHOOK = select(exists().where(webhooks.c.active.is_(True)))
_ANY_PUSH_MIRROR = select(exists().where(mirrors.c.direction == "push", mirrors.c.enabled.is_(True)))
_ANY_PROMOTION = select(exists().where(promotion_policies.c.enabled.is_(True)))
_ANY_TAG_LIMIT = select(
    exists().where(pruning_policies.c.enabled.is_(True), pruning_policies.c.max_tags.is_not(None))
)


async def any_active_webhook(conn: AsyncConnection) -> bool:
    return bool((await conn.execute(_ANY_WEBHOOK)).scalar())


async def any_push_mirror(conn: AsyncConnection) -> bool:
    return bool((await conn.execute(_ANY_PUSH_MIRROR)).scalar())


async def any_promotion_policy(conn: AsyncConnection) -> bool:
    return bool((await conn.execute(_ANY_PROMOTION)).scalar())


async def any_tag_limit(conn: AsyncConnection) -> bool:
    return bool((await conn.execute(_ANY_TAG_LIMIT)).scalar())
