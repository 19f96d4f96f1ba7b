"""Repositories: lookup, the catalog, and management (create, settings, visibility, delete)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import accounts as qa
from moorage.db import content as q
from moorage.db.engine import Database
from moorage.oci.errors import NameInvalid, NameUnknown
from moorage.oci.reference import namespace_of, validate_name
from moorage.services import events as ev
from moorage.services.access import AccessService, Level, Principal
from moorage.services.audit import AuditLog
from moorage.services.clock import Clock
from moorage.services.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from moorage.services.events import EventLog

VISIBILITIES = ("public", "private")


@dataclass(frozen=True, slots=True)
class Repository:
    name: str
    namespace: str
    visibility: str
    description: str | None
    immutable_tags: bool
    created_at: dt.datetime
    level: str  # the caller's access level
    scan_on_push: bool | None  # None: the registry's default (scan_on_push_default)

    @classmethod
    def of(cls, info: qa.RepositoryInfo, level: Level) -> Repository:
        return cls(
            info.name,
            info.namespace,
            info.visibility,
            info.description,
            info.immutable_tags,
            info.created_at,
            level.label,
            info.scan_on_push,
        )


@dataclass
class RepositoryService:
    db: Database
    clock: Clock
    access: AccessService
    audit: AuditLog
    events: EventLog

    async def require(self, name: str) -> int:
        """Id of an existing repository; ``NameUnknown`` otherwise."""
        validate_name(name)
        async with self.db.read() as conn:
            rid = await q.repository_id(conn, name)
        if rid is None:
            raise NameUnknown(f"repository {name!r} is not known to the registry", {"name": name})
        return rid

    async def catalog(self, last: str | None, limit: int, principal: Principal | None) -> list[str]:
        """Repository names after ``last``, only those the caller may see."""
        if principal is not None and principal.is_admin:
            async with self.db.read() as conn:
                return await q.catalog(conn, last, limit)
        out: list[str] = []
        cursor = last
        while len(out) < limit:
            async with self.db.read() as conn:
                page = await q.catalog(conn, cursor, max(limit * 2, 100))
            if not page:
                break
            for name in page:
                if (await self.access.repository(principal, name)).level >= Level.READ_ONLY:
                    out.append(name)
                    if len(out) == limit:
                        break
            cursor = page[-1]
        return out

    async def create(
        self,
        actor: Principal | None,
        name: str,
        *,
        visibility: str = "private",
        description: str | None = None,
        immutable_tags: bool = False,
        scan_on_push: bool | None = None,
    ) -> Repository:
        try:
            validate_name(name)
        except NameInvalid as exc:
            raise InvalidInput(exc.message, field="name") from None
        if "/" not in name:
            raise InvalidInput("a repository name is NAMESPACE/NAME", field="name")
        if visibility not in VISIBILITIES:
            raise InvalidInput("visibility must be public or private", field="visibility")
        ns = namespace_of(name)
        if await self.access.namespace_level(actor, ns) < Level.ADMIN:
            raise Forbidden(f"only administrators of namespace {ns!r} may create repositories in it")
        async with self.db.write() as conn:
            if await qa.namespace(conn, ns) is None:
                raise NotFound(
                    f"namespace {ns!r} does not exist: create the organization first", field="name"
                )
            if await q.repository_id(conn, name) is not None:
                raise AlreadyExists(f"repository {name!r} already exists", field="name")
            rid = await q.ensure_repository(
                conn, name, self.clock(), actor.username if actor else None, visibility
            )
            await qa.update_repository_settings(
                conn, rid, description=description, immutable_tags=immutable_tags, scan_on_push=scan_on_push
            )
            await self.events.emit(
                conn,
                ev.REPO_CREATED,
                repository=name,
                actor=actor.username if actor else None,
                contents={"visibility": visibility, "createdBy": "api"},
            )
            await self.audit.record(
                "repository.create",
                actor=actor.username if actor else None,
                target=name,
                detail={"visibility": visibility},
                conn=conn,
            )
        return await self.get(actor, name)

    async def get(self, actor: Principal | None, name: str) -> Repository:
        async with self.db.read() as conn:
            info = await qa.repository_info(conn, name)
            access = await self.access.repository_in(conn, actor, name)
        if info is None or access.level < Level.READ_ONLY:
            raise NotFound(f"repository {name!r} does not exist")
        return Repository.of(info, access.level)

    async def list(
        self,
        actor: Principal | None,
        *,
        namespace: str | None = None,
        visibility: str | None = None,
        search: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[Repository], int]:
        async with self.db.read() as conn:
            infos, total = await qa.list_repositories(
                conn,
                namespace_name=namespace,
                visibility=visibility,
                search=search,
                visible_to_user=actor.user_id if actor else None,
                everything=bool(actor and actor.is_admin),
                offset=offset,
                limit=limit,
            )
            out = [
                Repository.of(i, (await self.access.repository_in(conn, actor, i.name)).level) for i in infos
            ]
        return out, total

    async def _administered(
        self, conn: AsyncConnection, actor: Principal | None, name: str, doing: str
    ) -> qa.RepositoryInfo:
        """The repository, if the caller administers it: ``NotFound`` when it may not even see it."""
        info = await qa.repository_info(conn, name)
        access = await self.access.repository_in(conn, actor, name)
        if info is None or access.level < Level.READ_ONLY:
            raise NotFound(f"repository {name!r} does not exist")
        if access.level < Level.ADMIN:
            raise Forbidden(f"only administrators of {name!r} may {doing}")
        return info

    async def update(
        self,
        actor: Principal | None,
        name: str,
        *,
        visibility: str | None = None,
        description: str | None = None,
        immutable_tags: bool | None = None,
        scan_on_push: bool | None = None,
    ) -> Repository:
        values: dict[str, Any] = {}
        if visibility is not None:
            if visibility not in VISIBILITIES:
                raise InvalidInput("visibility must be public or private", field="visibility")
            values["visibility"] = visibility
        if description is not None:
            values["description"] = description
        if immutable_tags is not None:
            values["immutable_tags"] = immutable_tags
        if scan_on_push is not None:
            values["scan_on_push"] = scan_on_push
        async with self.db.write() as conn:
            info = await self._administered(conn, actor, name, "change its settings")
            if values:
                await qa.update_repository_settings(conn, info.id, **values)
            await self.events.emit(
                conn,
                ev.REPO_UPDATED,
                repository=name,
                actor=actor.username if actor else None,
                contents=values,
            )
            await self.audit.record(
                "repository.update",
                actor=actor.username if actor else None,
                target=name,
                detail=values,
                conn=conn,
            )
        return await self.get(actor, name)

    async def delete(self, actor: Principal | None, name: str) -> None:
        async with self.db.write() as conn:
            info = await self._administered(conn, actor, name, "delete it")
            await qa.delete_repository(conn, info.id)
            await self.events.emit(
                conn, ev.REPO_DELETED, repository=name, actor=actor.username if actor else None
            )
            await self.audit.record(
                "repository.delete", actor=actor.username if actor else None, target=name, conn=conn
            )
