"""Queries for the events outbox and its consumers' cursors."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.content import _insert
from moorage.db.tables import event_cursors, events


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    type: str
    created_at: dt.datetime
    namespace: str | None
    repository: str | None
    tag: str | None
    digest: str | None
    actor: str | None
    contents: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    created_at: dt.datetime
    namespace: str | None
    repository: str | None
    tag: str | None
    digest: str | None
    actor: str | None
    contents: dict[str, Any]

    def values(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "created_at": self.created_at,
            "namespace": self.namespace,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "actor": self.actor,
            "contents": json.dumps(self.contents, sort_keys=True, default=str),
        }


#: What one pass of the event dispatcher has read: the events after an id, by (id, batch size).
PassReads = dict[tuple[int, int], list[EventRow]]


def _row(r: Any) -> EventRow:
    return EventRow(
        r.id,
        r.type,
        aware(r.created_at),
        r.namespace,
        r.repository,
        r.tag,
        r.digest,
        r.actor,
        json.loads(r.contents),
    )


# Built once: each push writes events and each dispatch pass reads them.
_INSERT_EVENTS = insert(events)
_EVENTS_AFTER = (
    select(events).where(events.c.id > bindparam("after_id")).order_by(events.c.id).limit(bindparam("limit"))
)


async def insert_events(conn: AsyncConnection, new: Sequence[NewEvent]) -> None:
    if new:
        await conn.execute(_INSERT_EVENTS, [e.values() for e in new])


async def events_after(conn: AsyncConnection, after_id: int, limit: int) -> list[EventRow]:
    rows = await conn.execute(_EVENTS_AFTER, {"after_id": after_id, "limit": limit})
    return [_row(r) for r in rows]


_LATEST_ID = select(func.coalesce(func.max(events.c.id), 0))


async def latest_id(conn: AsyncConnection) -> int:
    return int((await conn.execute(_LATEST_ID)).scalar_one())


async def list_events(
    conn: AsyncConnection,
    *,
    repository: str | None = None,
    namespace: str | None = None,
    types: Sequence[str] = (),
    before_id: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[EventRow], int]:
    """Newest first, with the total that matches."""
    where = []
    if repository is not None:
        where.append(events.c.repository == repository)
    if namespace is not None:
        where.append(events.c.namespace == namespace)
    if types:
        where.append(events.c.type.in_(list(types)))
    if before_id is not None:
        where.append(events.c.id < before_id)
    total = int((await conn.execute(select(func.count()).select_from(events).where(*where))).scalar_one())
    rows = await conn.execute(
        select(events).where(*where).order_by(events.c.id.desc()).offset(offset).limit(limit)
    )
    return [_row(r) for r in rows], total


async def cursor(conn: AsyncConnection, consumer: str, now: dt.datetime, start_at: int) -> int:
    """The consumer's last handled event id; a new consumer starts at ``start_at``."""
    await conn.execute(
        _insert(conn, event_cursors)  # type: ignore[attr-defined]
        .values(consumer=consumer, last_id=start_at, updated_at=now)
        .on_conflict_do_nothing()
    )
    found = await conn.execute(select(event_cursors.c.last_id).where(event_cursors.c.consumer == consumer))
    return int(found.scalar_one())


async def cursor_position(conn: AsyncConnection, consumer: str) -> int | None:
    found = await conn.execute(select(event_cursors.c.last_id).where(event_cursors.c.consumer == consumer))
    value = found.scalar_one_or_none()
    return int(value) if value is not None else None


async def lock_cursor(conn: AsyncConnection, consumer: str) -> int | None:
    """The cursor, locked until the transaction ends (PostgreSQL; SQLite's writer holds the database)."""
    query = select(event_cursors.c.last_id).where(event_cursors.c.consumer == consumer)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    value = (await conn.execute(query)).scalar_one_or_none()
    return int(value) if value is not None else None


async def advance_cursor(
    conn: AsyncConnection, consumer: str, expected: int, to: int, now: dt.datetime
) -> bool:
    """Compare-and-set: ``False`` when another process moved the cursor first."""
    result = await conn.execute(
        update(event_cursors)
        .where(event_cursors.c.consumer == consumer, event_cursors.c.last_id == expected)
        .values(last_id=to, updated_at=now)
    )
    return bool(result.rowcount == 1)
