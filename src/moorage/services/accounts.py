"""Users, organizations, teams, memberships, team access grants and personal access tokens.

Every mutating method takes the acting principal and checks its rights through the access
service, and records the change in the audit log in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import accounts as qa
from moorage.db.engine import Database
from moorage.oci.reference import is_valid_namespace
from moorage.services.access import AccessService, Level, Principal
from moorage.services.audit import AuditLog
from moorage.services.authn import Authenticator
from moorage.services.clock import Clock
from moorage.services.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from moorage.services.passwords import (
    MAX_SECRET_LENGTH,
    MIN_PASSWORD_LENGTH,
    PERSONAL_TOKEN_PREFIX,
    REFRESH_TOKEN_PREFIX,
    PasswordHashing,
    generate_password,
    new_secret,
    secret_digest,
)


@dataclass(frozen=True, slots=True)
class User:
    username: str
    full_name: str | None
    email: str | None
    is_admin: bool
    is_active: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AccessToken:
    id: int
    label: str
    prefix: str
    is_active: bool
    created_at: dt.datetime
    last_used_at: dt.datetime | None


def _user(row: qa.UserRow) -> User:
    return User(row.username, row.full_name, row.email, row.is_admin, row.is_active, row.created_at)


def _check_name(name: str, what: str, field: str = "name") -> str:
    if not is_valid_namespace(name):
        raise InvalidInput(
            f"invalid {what} name {name[:80]!r}: 1-64 lowercase letters and digits, separated by '.', '_' or '-'",
            field=field,
        )
    return name


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH or len(password) > MAX_SECRET_LENGTH:
        raise InvalidInput(
            f"a password needs {MIN_PASSWORD_LENGTH} to {MAX_SECRET_LENGTH} characters", field="password"
        )
    if password.startswith((PERSONAL_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX)):
        raise InvalidInput("a password cannot look like an access token", field="password")
    return password


@dataclass
class AccountService:
    db: Database
    access: AccessService
    audit: AuditLog
    authn: Authenticator
    clock: Clock
    passwords: PasswordHashing

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _require_admin(actor: Principal | None) -> Principal:
        if actor is None or not actor.is_admin:
            raise Forbidden("only administrators may do this")
        return actor

    async def _org(self, conn: AsyncConnection, name: str) -> int:
        ns = await qa.namespace(conn, name)
        if ns is None or ns[1] != "organization":
            raise NotFound(f"organization {name!r} does not exist")
        return ns[0]

    async def _require_org_admin(self, conn: AsyncConnection, actor: Principal | None, org: str) -> int:
        ns_id = await self._org(conn, org)
        if actor is None:
            raise Forbidden("sign in first")
        if not actor.is_admin and await qa.org_role(conn, ns_id, actor.user_id) != "owner":
            raise Forbidden(f"only owners of {org!r} and administrators may do this")
        return ns_id

    async def _require_org_member(self, conn: AsyncConnection, actor: Principal | None, org: str) -> int:
        ns_id = await self._org(conn, org)
        if actor is None:
            raise Forbidden("sign in first")
        if not actor.is_admin and await qa.org_role(conn, ns_id, actor.user_id) is None:
            raise Forbidden(f"only members of {org!r} may see this")
        return ns_id

    async def _user_id(self, conn: AsyncConnection, username: str) -> qa.UserRow:
        row = await qa.user_by_name(conn, username)
        if row is None:
            raise NotFound(f"user {username!r} does not exist")
        return row

    # -- users --------------------------------------------------------------------------
    async def bootstrap_admin(self, password: str | None) -> str | None:
        """Create ``admin`` when there are no users; returns the password when it was generated.

        Servers starting at once race here (PostgreSQL, READ COMMITTED): the loser finds the
        administrator the winner just created and does nothing."""
        generated = password is None
        secret = password or generate_password()
        try:
            async with self.db.write() as conn:
                if await qa.count_users(conn) > 0:
                    return None
                await self._insert_user(conn, "admin", secret, "Administrator", None, True)
                await self.audit.record(
                    "user.create", actor=None, target="admin", detail={"bootstrap": True}, conn=conn
                )
        except (IntegrityError, AlreadyExists):
            async with self.db.read() as conn:
                if await qa.count_users(conn) > 0:
                    return None
            raise
        return secret if generated else None

    async def _insert_user(
        self,
        conn: AsyncConnection,
        username: str,
        password: str,
        full_name: str | None,
        email: str | None,
        is_admin: bool,
    ) -> None:
        _check_name(username, "user", field="username")
        _check_password(password)
        if await qa.namespace(conn, username) is not None:
            raise AlreadyExists(f"the name {username!r} is taken by a user or organization", field="username")
        now = self.clock()
        ns_id = await qa.create_namespace(conn, username, "user", now)
        await qa.insert_user(
            conn, ns_id, username, self.passwords.hash(password), full_name, email, is_admin, now
        )

    async def create_user(
        self,
        actor: Principal | None,
        username: str,
        password: str,
        *,
        full_name: str | None = None,
        email: str | None = None,
        is_admin: bool = False,
    ) -> User:
        self._require_admin(actor)
        try:
            async with self.db.write() as conn:
                await self._insert_user(conn, username, password, full_name, email, is_admin)
                await self.audit.record(
                    "user.create",
                    actor=actor.username if actor else None,
                    target=username,
                    detail={"admin": is_admin},
                    conn=conn,
                )
        except IntegrityError:
            raise AlreadyExists(
                f"the name {username!r} is taken by a user or organization", field="username"
            ) from None
        return await self.get_user(username)

    async def get_user(self, username: str) -> User:
        async with self.db.read() as conn:
            return _user(await self._user_id(conn, username))

    async def list_users(self, actor: Principal | None, offset: int, limit: int) -> tuple[list[User], int]:
        if actor is None:
            raise Forbidden("sign in first")
        async with self.db.read() as conn:
            rows, total = await qa.list_users(conn, offset, limit)
        return [_user(r) for r in rows], total

    async def update_user(
        self,
        actor: Principal | None,
        username: str,
        *,
        password: str | None = None,
        full_name: str | None = None,
        email: str | None = None,
        is_admin: bool | None = None,
        is_active: bool | None = None,
    ) -> User:
        if actor is None or (actor.username != username and not actor.is_admin):
            raise Forbidden("only the user itself or an administrator may change a user")
        if (is_admin is not None or is_active is not None) and not actor.is_admin:
            raise Forbidden("only administrators may change administrator or active status")
        if actor.username == username and (is_admin is False or is_active is False):
            raise InvalidInput(
                "administrators cannot deactivate themselves or drop their own administrator rights",
                field="is_active" if is_active is False else "is_admin",
            )
        values: dict[str, Any] = {}
        if password is not None:
            values["password_hash"] = self.passwords.hash(_check_password(password))
        if full_name is not None:
            values["full_name"] = full_name
        if email is not None:
            values["email"] = email
        if is_admin is not None:
            values["is_admin"] = is_admin
        if is_active is not None:
            values["is_active"] = is_active
        async with self.db.write() as conn:
            row = await self._user_id(conn, username)
            if values:
                await qa.update_user(conn, row.id, **values)
            changed = sorted(k for k in values if k != "password_hash") + (["password"] if password else [])
            await self.audit.record(
                "user.update", actor=actor.username, target=username, detail={"changed": changed}, conn=conn
            )
        self.authn.forget(username)
        return await self.get_user(username)

    async def delete_user(self, actor: Principal | None, username: str) -> None:
        self._require_admin(actor)
        assert actor is not None
        if actor.username == username:
            raise InvalidInput("administrators cannot delete themselves")
        async with self.db.write() as conn:
            row = await self._user_id(conn, username)
            if await qa.namespace_repository_count(conn, row.namespace_id):
                raise InvalidInput(f"user {username!r} still has repositories: delete or move them first")
            await qa.delete_namespace(conn, row.namespace_id)  # cascades to the user and its tokens
            await self.audit.record("user.delete", actor=actor.username, target=username, conn=conn)
        self.authn.forget(username)

    # -- organizations ------------------------------------------------------------------
    async def create_organization(self, actor: Principal | None, name: str) -> dict[str, Any]:
        """Administrators create organizations; any user may, and becomes its owner."""
        if actor is None:
            raise Forbidden("sign in first")
        _check_name(name, "organization")
        try:
            async with self.db.write() as conn:
                if await qa.namespace(conn, name) is not None:
                    raise AlreadyExists(f"the name {name!r} is taken by a user or organization", field="name")
                ns_id = await qa.create_namespace(conn, name, "organization", self.clock())
                await qa.set_org_member(conn, ns_id, actor.user_id, "owner")
                await self.audit.record("organization.create", actor=actor.username, target=name, conn=conn)
        except IntegrityError:
            raise AlreadyExists(
                f"the name {name!r} is taken by a user or organization", field="name"
            ) from None
        return await self.get_organization(actor, name)

    async def get_organization(self, actor: Principal | None, name: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            ns_id = await self._org(conn, name)
            members = await qa.org_members(conn, ns_id)
            teams = await qa.list_teams(conn, ns_id)
        return {
            "name": name,
            "members": [{"username": u, "role": r} for u, r in members],
            "teams": [{"name": t, "description": d} for t, d in teams],
        }

    async def list_organizations(self, offset: int, limit: int) -> tuple[list[str], int]:
        async with self.db.read() as conn:
            rows, total = await qa.list_namespaces(conn, "organization", offset, limit)
        return [r[1] for r in rows], total

    async def delete_organization(self, actor: Principal | None, name: str) -> None:
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, name)
            if await qa.namespace_repository_count(conn, ns_id):
                raise InvalidInput(f"organization {name!r} still has repositories: delete them first")
            await qa.delete_namespace(conn, ns_id)
            await self.audit.record(
                "organization.delete", actor=actor.username if actor else None, target=name, conn=conn
            )

    async def set_member(self, actor: Principal | None, org: str, username: str, role: str) -> None:
        if role not in ("owner", "member"):
            raise InvalidInput("role must be owner or member", field="role")
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, org)
            user = await self._user_id(conn, username)
            await qa.set_org_member(conn, ns_id, user.id, role)
            await self.audit.record(
                "organization.member.set",
                actor=actor.username if actor else None,
                target=f"{org}/{username}",
                detail={"role": role},
                conn=conn,
            )

    async def remove_member(self, actor: Principal | None, org: str, username: str) -> None:
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, org)
            user = await self._user_id(conn, username)
            if not await qa.remove_org_member(conn, ns_id, user.id):
                raise NotFound(f"{username!r} is not a member of {org!r}")
            await self.audit.record(
                "organization.member.remove",
                actor=actor.username if actor else None,
                target=f"{org}/{username}",
                conn=conn,
            )

    # -- teams --------------------------------------------------------------------------
    async def _team(self, conn: AsyncConnection, ns_id: int, org: str, team: str) -> int:
        found = await qa.team(conn, ns_id, team)
        if found is None:
            raise NotFound(f"team {team!r} does not exist in {org!r}")
        return found[0]

    async def create_team(
        self, actor: Principal | None, org: str, name: str, description: str | None
    ) -> None:
        _check_name(name, "team")
        try:
            async with self.db.write() as conn:
                ns_id = await self._require_org_admin(conn, actor, org)
                if await qa.team(conn, ns_id, name) is not None:
                    raise AlreadyExists(f"team {name!r} already exists in {org!r}", field="name")
                await qa.create_team(conn, ns_id, name, description, self.clock())
                await self.audit.record(
                    "team.create", actor=actor.username if actor else None, target=f"{org}/{name}", conn=conn
                )
        except IntegrityError:
            raise AlreadyExists(f"team {name!r} already exists in {org!r}", field="name") from None

    async def get_team(self, actor: Principal | None, org: str, name: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            ns_id = await self._require_org_member(conn, actor, org)
            found = await qa.team(conn, ns_id, name)
            if found is None:
                raise NotFound(f"team {name!r} does not exist in {org!r}")
            members = await qa.team_member_names(conn, found[0])
            grants = await qa.team_access(conn, found[0])
        return {
            "organization": org,
            "name": name,
            "description": found[1],
            "members": members,
            "access": [{"kind": k, "name": n, "level": lv} for k, n, lv in grants],
        }

    async def update_team(
        self, actor: Principal | None, org: str, name: str, description: str | None
    ) -> None:
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, org)
            await qa.update_team(conn, await self._team(conn, ns_id, org, name), description)

    async def delete_team(self, actor: Principal | None, org: str, name: str) -> None:
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, org)
            await qa.delete_team(conn, await self._team(conn, ns_id, org, name))
            await self.audit.record(
                "team.delete", actor=actor.username if actor else None, target=f"{org}/{name}", conn=conn
            )

    async def add_team_member(self, actor: Principal | None, org: str, team: str, username: str) -> None:
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, org)
            team_id = await self._team(conn, ns_id, org, team)
            user = await self._user_id(conn, username)
            if await qa.org_role(conn, ns_id, user.id) is None:
                await qa.set_org_member(conn, ns_id, user.id, "member")
            await qa.add_team_member(conn, team_id, user.id)
            await self.audit.record(
                "team.member.add",
                actor=actor.username if actor else None,
                target=f"{org}/{team}",
                detail={"user": username},
                conn=conn,
            )

    async def remove_team_member(self, actor: Principal | None, org: str, team: str, username: str) -> None:
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, org)
            team_id = await self._team(conn, ns_id, org, team)
            user = await self._user_id(conn, username)
            if not await qa.remove_team_member(conn, team_id, user.id):
                raise NotFound(f"{username!r} is not in team {team!r}")
            await self.audit.record(
                "team.member.remove",
                actor=actor.username if actor else None,
                target=f"{org}/{team}",
                detail={"user": username},
                conn=conn,
            )

    async def grant_repository(
        self, actor: Principal | None, org: str, team: str, repository: str, level: str
    ) -> None:
        """Give a team of ``org`` a level on a repository of ``org``. Callers need admin on the repository."""
        parsed = self._level(level)
        async with self.db.write() as conn:
            ns_id = await self._org(conn, org)
            team_id = await self._team(conn, ns_id, org, team)
            info = await qa.repository_info(conn, repository)
            if info is None:
                raise NotFound(f"repository {repository!r} does not exist")
            if info.namespace_id != ns_id:
                raise InvalidInput(
                    f"teams of {org!r} can be granted repositories of {org!r} only", field="repository"
                )
            if (await self.access.repository_in(conn, actor, repository)).level < Level.ADMIN:
                raise Forbidden(f"only administrators of {repository!r} may manage its access")
            await qa.set_team_repository_access(conn, team_id, info.id, parsed.label)
            await self.audit.record(
                "access.grant",
                actor=actor.username if actor else None,
                target=repository,
                detail={"team": f"{org}/{team}", "level": parsed.label},
                conn=conn,
            )

    async def revoke_repository(self, actor: Principal | None, org: str, team: str, repository: str) -> None:
        async with self.db.write() as conn:
            ns_id = await self._org(conn, org)
            team_id = await self._team(conn, ns_id, org, team)
            info = await qa.repository_info(conn, repository)
            if info is None:
                raise NotFound(f"repository {repository!r} does not exist")
            if (await self.access.repository_in(conn, actor, repository)).level < Level.ADMIN:
                raise Forbidden(f"only administrators of {repository!r} may manage its access")
            if not await qa.remove_team_repository_access(conn, team_id, info.id):
                raise NotFound(f"team {team!r} has no grant on {repository!r}")
            await self.audit.record(
                "access.revoke",
                actor=actor.username if actor else None,
                target=repository,
                detail={"team": f"{org}/{team}"},
                conn=conn,
            )

    async def grant_namespace(self, actor: Principal | None, org: str, team: str, level: str) -> None:
        """Give a team a level on every repository of its organization."""
        parsed = self._level(level)
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, org)
            team_id = await self._team(conn, ns_id, org, team)
            await qa.set_team_namespace_access(conn, team_id, ns_id, parsed.label)
            await self.audit.record(
                "access.grant",
                actor=actor.username if actor else None,
                target=org,
                detail={"team": f"{org}/{team}", "level": parsed.label},
                conn=conn,
            )

    async def revoke_namespace(self, actor: Principal | None, org: str, team: str) -> None:
        async with self.db.write() as conn:
            ns_id = await self._require_org_admin(conn, actor, org)
            team_id = await self._team(conn, ns_id, org, team)
            if not await qa.remove_team_namespace_access(conn, team_id, ns_id):
                raise NotFound(f"team {team!r} has no grant on {org!r}")
            await self.audit.record(
                "access.revoke",
                actor=actor.username if actor else None,
                target=org,
                detail={"team": f"{org}/{team}"},
                conn=conn,
            )

    @staticmethod
    def _level(text: str) -> Level:
        try:
            return Level.parse(text)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="level") from None

    # -- personal access tokens ---------------------------------------------------------
    async def create_token(self, actor: Principal | None, label: str) -> tuple[AccessToken, str]:
        """A new personal access token; the secret is returned once and stored only hashed."""
        if actor is None:
            raise Forbidden("sign in first")
        label = label.strip()
        if not label or len(label) > 255:
            raise InvalidInput("a token needs a label of 1 to 255 characters", field="label")
        secret = new_secret(PERSONAL_TOKEN_PREFIX)
        async with self.db.write() as conn:
            token_id = await qa.insert_token(
                conn,
                actor.user_id,
                label,
                secret_digest(secret),
                secret[len(PERSONAL_TOKEN_PREFIX) :][:6],
                "personal",
                self.clock(),
            )
            await self.audit.record(
                "token.create", actor=actor.username, target=str(token_id), detail={"label": label}, conn=conn
            )
        tokens = await self.list_tokens(actor)
        return next(t for t in tokens if t.id == token_id), secret

    async def issue_refresh_token(self, actor: Principal) -> str:
        secret = new_secret(REFRESH_TOKEN_PREFIX)
        async with self.db.write() as conn:
            await qa.insert_token(
                conn, actor.user_id, "refresh token", secret_digest(secret), "", "refresh", self.clock()
            )
        return secret

    async def list_tokens(self, actor: Principal | None) -> list[AccessToken]:
        if actor is None:
            raise Forbidden("sign in first")
        async with self.db.read() as conn:
            rows = await qa.list_tokens(conn, actor.user_id)
        return [AccessToken(*r) for r in rows]

    async def update_token(
        self,
        actor: Principal | None,
        token_id: int,
        *,
        label: str | None = None,
        is_active: bool | None = None,
    ) -> AccessToken:
        if actor is None:
            raise Forbidden("sign in first")
        values: dict[str, Any] = {}
        if label is not None:
            if not label.strip() or len(label) > 255:
                raise InvalidInput("a token needs a label of 1 to 255 characters", field="label")
            values["label"] = label.strip()
        if is_active is not None:
            values["is_active"] = is_active
        async with self.db.write() as conn:
            if values and not await qa.update_token(conn, actor.user_id, token_id, **values):
                raise NotFound(f"token {token_id} does not exist")
            await self.audit.record(
                "token.update",
                actor=actor.username,
                target=str(token_id),
                detail={"active": is_active} if is_active is not None else None,
                conn=conn,
            )
        self.authn.forget(actor.username)
        for token in await self.list_tokens(actor):
            if token.id == token_id:
                return token
        raise NotFound(f"token {token_id} does not exist")

    async def delete_token(self, actor: Principal | None, token_id: int) -> None:
        if actor is None:
            raise Forbidden("sign in first")
        async with self.db.write() as conn:
            if not await qa.delete_token(conn, actor.user_id, token_id):
                raise NotFound(f"token {token_id} does not exist")
            await self.audit.record("token.delete", actor=actor.username, target=str(token_id), conn=conn)
        self.authn.forget(actor.username)
