"""Who may do what: access levels on repositories, decided in one place for every face.

Levels are additive: a user holds the highest of what applies — administrator of the
system, owner of the namespace (its own user namespace or an organization it owns), the
grants of every team it is in (on the namespace or on the repository), and read-only on
public repositories (which anonymous callers get too).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import accounts as qa
from moorage.db.engine import Database
from moorage.oci.reference import namespace_of


class Level(IntEnum):
    NONE = 0
    READ_ONLY = 1
    READ_WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Level:
        for level, label in _LABELS.items():
            if label == text and level is not Level.NONE:
                return level
        raise ValueError(f"unknown access level {text!r}: use read-only, read-write or admin")


_LABELS = {
    Level.NONE: "none",
    Level.READ_ONLY: "read-only",
    Level.READ_WRITE: "read-write",
    Level.ADMIN: "admin",
}

#: Registry token actions each level holds.
ACTIONS: dict[Level, frozenset[str]] = {
    Level.NONE: frozenset(),
    Level.READ_ONLY: frozenset({"pull"}),
    Level.READ_WRITE: frozenset({"pull", "push", "delete"}),
    Level.ADMIN: frozenset({"pull", "push", "delete", "*"}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user."""

    user_id: int
    username: str
    is_admin: bool
    namespace_id: int


@dataclass(frozen=True, slots=True)
class RepositoryAccess:
    level: Level
    exists: bool
    may_create: bool  # a push may create it (it does not exist and the caller administers its namespace)


@dataclass
class AccessService:
    db: Database
    create_repository_on_push: bool

    async def repository(self, principal: Principal | None, name: str) -> RepositoryAccess:
        async with self.db.read() as conn:
            return await self.repository_in(conn, principal, name)

    async def repository_in(
        self, conn: AsyncConnection, principal: Principal | None, name: str
    ) -> RepositoryAccess:
        info = await qa.repository_info(conn, name)
        if principal is not None and principal.is_admin:
            return RepositoryAccess(
                Level.ADMIN, info is not None, info is None and self.create_repository_on_push
            )
        level = Level.READ_ONLY if info is not None and info.visibility == "public" else Level.NONE
        ns_level = Level.NONE
        if principal is not None:
            ns = await qa.namespace(conn, namespace_of(name))
            if ns is not None:
                ns_level = await self._namespace_level(conn, principal, ns[0], ns[1])
                repo_id = info.id if info is not None else None
                team_levels = [
                    Level.parse(t) for t in await qa.granted_levels(conn, principal.user_id, ns[0], repo_id)
                ]
                level = max([level, ns_level, *team_levels])
        may_create = info is None and ns_level == Level.ADMIN and self.create_repository_on_push
        return RepositoryAccess(level, info is not None, may_create)

    @staticmethod
    async def _namespace_level(conn: AsyncConnection, principal: Principal, ns_id: int, kind: str) -> Level:
        if kind == "user":
            return Level.ADMIN if ns_id == principal.namespace_id else Level.NONE
        role = await qa.org_role(conn, ns_id, principal.user_id)
        return Level.ADMIN if role == "owner" else Level.NONE

    async def namespace_level(self, principal: Principal | None, namespace: str) -> Level:
        """The caller's level over a whole namespace (to create repositories, manage teams)."""
        if principal is None:
            return Level.NONE
        if principal.is_admin:
            return Level.ADMIN
        async with self.db.read() as conn:
            ns = await qa.namespace(conn, namespace)
            if ns is None:
                return Level.NONE
            return await self._namespace_level(conn, principal, ns[0], ns[1])

    async def granted_actions(self, principal: Principal | None, name: str, requested: set[str]) -> set[str]:
        """The subset of ``requested`` registry actions the caller holds on repository ``name``.

        ``*`` is granted only to repository administrators; for others it stands for the
        actions they do hold (skopeo asks for ``*`` to delete).
        """
        access = await self.repository(principal, name)
        held = set(ACTIONS[access.level])
        if not access.exists:
            # Pushing into a repository that does not exist creates it: only for those who may.
            held -= {"push", "*"}
        if access.may_create:
            held |= {"pull", "push"}
        if "*" in requested:
            return held
        return requested & held
