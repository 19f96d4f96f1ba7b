"""Queries of the web UI's sessions (``web_sessions``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.tables import users, web_sessions


@dataclass(frozen=True, slots=True)
class SessionRow:
    user_id: int
    username: str
    is_admin: bool
    is_active: bool
    namespace_id: int
    csrf_token: str
    expires_at: dt.datetime


async def insert_session(
    conn: AsyncConnection,
    session_id: str,
    user_id: int,
    csrf_token: str,
    now: dt.datetime,
    expires_at: dt.datetime,
) -> None:
    await conn.execute(
        insert(web_sessions).values(
            id=session_id, user_id=user_id, csrf_token=csrf_token, created_at=now, expires_at=expires_at
        )
    )


async def session_by_id(conn: AsyncConnection, session_id: str) -> SessionRow | None:
    row = (
        await conn.execute(
            select(
                users.c.id,
                users.c.username,
                users.c.is_admin,
                users.c.is_active,
                users.c.namespace_id,
                web_sessions.c.csrf_token,
                web_sessions.c.expires_at,
            )
            .select_from(web_sessions.join(users, users.c.id == web_sessions.c.user_id))
            .where(web_sessions.c.id == session_id)
        )
    ).first()
    return SessionRow(*row) if row else None


async def delete_session(conn: AsyncConnection, session_id: str) -> bool:
    result = await conn.execute(delete(web_sessions).where(web_sessions.c.id == session_id))
    return bool(result.rowcount)


async def delete_expired(conn: AsyncConnection, now: dt.datetime) -> int:
    result = await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
    return int(result.rowcount or 0)
