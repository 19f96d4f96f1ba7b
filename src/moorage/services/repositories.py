"""Repositories as the registry protocol sees them: lookup, creation on push, the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.db import content as q
from moorage.db.engine import Database
from moorage.oci.errors import NameUnknown
from moorage.oci.reference import validate_name
from moorage.services.clock import Clock


@dataclass
class RepositoryService:
    db: Database
    clock: Clock

    async def require(self, name: str) -> int:
        """Id of an existing repository; ``NameUnknown`` otherwise."""
        validate_name(name)
        async with self.db.read() as conn:
            rid = await q.repository_id(conn, name)
        if rid is None:
            raise NameUnknown(f"repository {name!r} is not known to the registry", {"name": name})
        return rid

    async def catalog(self, last: str | None, limit: int) -> list[str]:
        async with self.db.read() as conn:
            return await q.catalog(conn, last, limit)
