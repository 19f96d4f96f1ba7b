"""The audit log: who authenticated, and who changed which permission, when and from where."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import accounts as qa
from moorage.db.engine import Database
from moorage.services.access import Principal
from moorage.services.clock import Clock
from moorage.services.errors import Forbidden


@dataclass
class AuditLog:
    db: Database
    clock: Clock

    async def record(
        self,
        action: str,
        *,
        actor: str | None,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
        remote_addr: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> None:
        """Write an entry; inside ``conn``'s transaction when given, so it commits with the change."""
        text = json.dumps(detail, sort_keys=True) if detail else None
        if conn is not None:
            await qa.insert_audit(conn, self.clock(), actor, action, target, text, remote_addr)
            return
        async with self.db.write() as own:
            await qa.insert_audit(own, self.clock(), actor, action, target, text, remote_addr)

    async def entries_for(
        self, actor: Principal | None, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """``entries`` for a caller: administrators only."""
        if actor is None or not actor.is_admin:
            raise Forbidden("only administrators may read the audit log")
        return await self.entries(offset, limit)

    async def entries(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        async with self.db.read() as conn:
            rows, total = await qa.list_audit(conn, offset, limit)
        return [
            {
                "id": r[0],
                "at": r[1],
                "actor": r[2],
                "action": r[3],
                "target": r[4],
                "detail": json.loads(r[5]) if r[5] else None,
                "remoteAddr": r[6],
            }
            for r in rows
        ], total
