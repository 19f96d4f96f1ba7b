"""Queries for webhooks and their delivery log."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.events import aware
from moorage.db.tables import namespaces, repositories, webhook_deliveries, webhooks

REPOSITORY, NAMESPACE, GLOBAL = "repository", "namespace", "global"
SUCCEEDED, FAILED = "succeeded", "failed"


@dataclass(frozen=True, slots=True)
class WebhookRow:
    id: int
    scope: str
    repository: str | None  # the repository's name, for repository webhooks
    namespace: str | None  # the namespace's name, for namespace webhooks
    name: str | None
    url: str
    event_types: list[str]
    secret: str
    format: str
    ca_cert: str | None
    skip_verify: bool
    active: bool
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    webhook_id: int
    event_id: int | None
    event_type: str
    job_id: int | None
    attempt: int
    status: str
    response_code: int | None
    duration_ms: int
    error: str | None
    at: dt.datetime


_FROM = webhooks.outerjoin(repositories, webhooks.c.repository_id == repositories.c.id).outerjoin(
    namespaces, webhooks.c.namespace_id == namespaces.c.id
)
_COLUMNS = (webhooks, repositories.c.name.label("repository_name"), namespaces.c.name.label("namespace_name"))

_ACTIVE = select(*_COLUMNS).select_from(_FROM).where(webhooks.c.active.is_(True)).order_by(webhooks.c.id)


def _hook(r: Any) -> WebhookRow:
    return WebhookRow(
        r.id,
        r.scope,
        r.repository_name,
        r.namespace_name,
        r.name,
        r.url,
        json.loads(r.event_types),
        r.secret,
        r.format,
        r.ca_cert,
        bool(r.skip_verify),
        bool(r.active),
        r.created_by,
        aware(r.created_at),
        aware(r.updated_at),
    )


def _delivery(r: Any) -> DeliveryRow:
    return DeliveryRow(
        r.id,
        r.webhook_id,
        r.event_id,
        r.event_type,
        r.job_id,
        r.attempt,
        r.status,
        r.response_code,
        r.duration_ms,
        r.error,
        aware(r.at),
    )


def _scope_filter(scope: str, owner_id: int | None) -> Any:
    if scope == REPOSITORY:
        return and_(webhooks.c.scope == REPOSITORY, webhooks.c.repository_id == owner_id)
    if scope == NAMESPACE:
        return and_(webhooks.c.scope == NAMESPACE, webhooks.c.namespace_id == owner_id)
    return webhooks.c.scope == GLOBAL


async def insert_webhook(
    conn: AsyncConnection,
    *,
    scope: str,
    owner_id: int | None,
    name: str | None,
    url: str,
    event_types: list[str],
    secret: str,
    format: str,
    ca_cert: str | None,
    skip_verify: bool,
    active: bool,
    created_by: str | None,
    now: dt.datetime,
) -> int:
    result = await conn.execute(
        insert(webhooks).values(
            scope=scope,
            repository_id=owner_id if scope == REPOSITORY else None,
            namespace_id=owner_id if scope == NAMESPACE else None,
            name=name,
            url=url,
            event_types=json.dumps(event_types),
            secret=secret,
            format=format,
            ca_cert=ca_cert,
            skip_verify=skip_verify,
            active=active,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def webhook(conn: AsyncConnection, webhook_id: int) -> WebhookRow | None:
    row = (
        await conn.execute(select(*_COLUMNS).select_from(_FROM).where(webhooks.c.id == webhook_id))
    ).first()
    return _hook(row) if row else None


async def list_webhooks(
    conn: AsyncConnection, scope: str, owner_id: int | None, offset: int, limit: int
) -> tuple[list[WebhookRow], int]:
    where = _scope_filter(scope, owner_id)
    total = int((await conn.execute(select(func.count()).select_from(webhooks).where(where))).scalar_one())
    rows = await conn.execute(
        select(*_COLUMNS).select_from(_FROM).where(where).order_by(webhooks.c.id).offset(offset).limit(limit)
    )
    return [_hook(r) for r in rows], total


async def update_webhook(conn: AsyncConnection, webhook_id: int, now: dt.datetime, **values: Any) -> None:
    if "event_types" in values:
        values["event_types"] = json.dumps(values["event_types"])
    await conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(updated_at=now, **values))


async def delete_webhook(conn: AsyncConnection, webhook_id: int) -> None:
    await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    await conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))


async def active_webhooks(conn: AsyncConnection) -> list[WebhookRow]:
    """Every active webhook, with its scope's repository or namespace name."""
    rows = await conn.execute(_ACTIVE)
    return [_hook(r) for r in rows]


async def insert_delivery(
    conn: AsyncConnection,
    *,
    webhook_id: int,
    event_id: int | None,
    event_type: str,
    job_id: int | None,
    attempt: int,
    status: str,
    response_code: int | None,
    duration_ms: int,
    error: str | None,
    at: dt.datetime,
    keep: int,
) -> int:
    """Record an attempt; only the newest ``keep`` of the webhook's deliveries are kept."""
    result = await conn.execute(
        insert(webhook_deliveries).values(
            webhook_id=webhook_id,
            event_id=event_id,
            event_type=event_type,
            job_id=job_id,
            attempt=attempt,
            status=status,
            response_code=response_code,
            duration_ms=duration_ms,
            error=error,
            at=at,
        )
    )
    new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    oldest_kept = (
        await conn.execute(
            select(webhook_deliveries.c.id)
            .where(webhook_deliveries.c.webhook_id == webhook_id)
            .order_by(webhook_deliveries.c.id.desc())
            .offset(keep - 1)
            .limit(1)
        )
    ).scalar_one_or_none()
    if oldest_kept is not None:
        await conn.execute(
            delete(webhook_deliveries).where(
                webhook_deliveries.c.webhook_id == webhook_id, webhook_deliveries.c.id < oldest_kept
            )
        )
    return new_id


async def list_deliveries(
    conn: AsyncConnection, webhook_id: int, offset: int, limit: int, event_id: int | None = None
) -> tuple[list[DeliveryRow], int]:
    """Newest first, with the total that matches."""
    where = [webhook_deliveries.c.webhook_id == webhook_id]
    if event_id is not None:
        where.append(webhook_deliveries.c.event_id == event_id)
    total = int(
        (await conn.execute(select(func.count()).select_from(webhook_deliveries).where(*where))).scalar_one()
    )
    rows = await conn.execute(
        select(webhook_deliveries)
        .where(*where)
        .order_by(webhook_deliveries.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_delivery(r) for r in rows], total


async def delivery(conn: AsyncConnection, delivery_id: int) -> DeliveryRow | None:
    row = (
        await conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id))
    ).first()
    return _delivery(row) if row else None
