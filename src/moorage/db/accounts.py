"""Queries over namespaces, users, organizations, teams, access grants, tokens and the audit log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db.tables import (
    access_tokens,
    audit_log,
    login_failures,
    namespaces,
    organization_members,
    repositories,
    repository_settings,
    signing_keys,
    team_members,
    team_namespace_access,
    team_repository_access,
    teams,
    users,
)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    password_hash: str
    full_name: str | None
    email: str | None
    is_admin: bool
    is_active: bool
    namespace_id: int
    created_at: dt.datetime


_USER_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.password_hash,
    users.c.full_name,
    users.c.email,
    users.c.is_admin,
    users.c.is_active,
    users.c.namespace_id,
    users.c.created_at,
)


@dataclass(frozen=True, slots=True)
class RepositoryInfo:
    id: int
    name: str
    namespace: str
    namespace_id: int
    visibility: str
    description: str | None
    immutable_tags: bool
    created_at: dt.datetime
    scan_on_push: bool | None = None  # None: the registry's default


# -- namespaces ---------------------------------------------------------------------------
async def namespace(conn: AsyncConnection, name: str) -> tuple[int, str] | None:
    """``(id, kind)`` of a namespace."""
    row = (
        await conn.execute(select(namespaces.c.id, namespaces.c.kind).where(namespaces.c.name == name))
    ).first()
    return (row[0], row[1]) if row else None


async def create_namespace(conn: AsyncConnection, name: str, kind: str, now: dt.datetime) -> int:
    result = await conn.execute(namespaces.insert().values(name=name, kind=kind, created_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def delete_namespace(conn: AsyncConnection, namespace_id: int) -> None:
    await conn.execute(delete(namespaces).where(namespaces.c.id == namespace_id))


async def list_namespaces(conn: AsyncConnection, kind: str, offset: int, limit: int) -> tuple[list[Any], int]:
    base = select(namespaces.c.id, namespaces.c.name, namespaces.c.created_at).where(
        namespaces.c.kind == kind
    )
    total = (await conn.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = (await conn.execute(base.order_by(namespaces.c.name).offset(offset).limit(limit))).all()
    return list(rows), int(total)


async def namespace_repository_count(conn: AsyncConnection, namespace_id: int) -> int:
    return int(
        (
            await conn.execute(
                select(func.count())
                .select_from(repository_settings)
                .where(repository_settings.c.namespace_id == namespace_id)
            )
        ).scalar_one()
    )


# -- users --------------------------------------------------------------------------------
async def user_by_name(conn: AsyncConnection, username: str) -> UserRow | None:
    row = (await conn.execute(select(*_USER_COLUMNS).where(users.c.username == username))).first()
    return UserRow(*row) if row else None


async def user_by_id(conn: AsyncConnection, user_id: int) -> UserRow | None:
    row = (await conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id))).first()
    return UserRow(*row) if row else None


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def insert_user(
    conn: AsyncConnection,
    namespace_id: int,
    username: str,
    password_hash: str,
    full_name: str | None,
    email: str | None,
    is_admin: bool,
    now: dt.datetime,
) -> int:
    result = await conn.execute(
        users.insert().values(
            namespace_id=namespace_id,
            username=username,
            password_hash=password_hash,
            full_name=full_name,
            email=email,
            is_admin=is_admin,
            is_active=True,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def update_user(conn: AsyncConnection, user_id: int, **values: Any) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(**values))


async def list_users(conn: AsyncConnection, offset: int, limit: int) -> tuple[list[UserRow], int]:
    total = (await conn.execute(select(func.count()).select_from(users))).scalar_one()
    rows = (
        await conn.execute(select(*_USER_COLUMNS).order_by(users.c.username).offset(offset).limit(limit))
    ).all()
    return [UserRow(*r) for r in rows], int(total)


# -- organizations and teams --------------------------------------------------------------
async def set_org_member(conn: AsyncConnection, namespace_id: int, user_id: int, role: str) -> None:
    await conn.execute(
        delete(organization_members).where(
            organization_members.c.namespace_id == namespace_id, organization_members.c.user_id == user_id
        )
    )
    await conn.execute(
        organization_members.insert().values(namespace_id=namespace_id, user_id=user_id, role=role)
    )


async def remove_org_member(conn: AsyncConnection, namespace_id: int, user_id: int) -> bool:
    result = await conn.execute(
        delete(organization_members).where(
            organization_members.c.namespace_id == namespace_id, organization_members.c.user_id == user_id
        )
    )
    # Leaving the organization also leaves its teams.
    team_ids = select(teams.c.id).where(teams.c.namespace_id == namespace_id).scalar_subquery()
    await conn.execute(
        delete(team_members).where(team_members.c.user_id == user_id, team_members.c.team_id.in_(team_ids))
    )
    return bool(result.rowcount)


async def org_members(conn: AsyncConnection, namespace_id: int) -> list[tuple[str, str]]:
    rows = await conn.execute(
        select(users.c.username, organization_members.c.role)
        .select_from(organization_members.join(users, users.c.id == organization_members.c.user_id))
        .where(organization_members.c.namespace_id == namespace_id)
        .order_by(users.c.username)
    )
    return [(r[0], r[1]) for r in rows]


async def org_role(conn: AsyncConnection, namespace_id: int, user_id: int) -> str | None:
    return (
        await conn.execute(
            select(organization_members.c.role).where(
                organization_members.c.namespace_id == namespace_id, organization_members.c.user_id == user_id
            )
        )
    ).scalar()


async def team(conn: AsyncConnection, namespace_id: int, name: str) -> tuple[int, str | None] | None:
    row = (
        await conn.execute(
            select(teams.c.id, teams.c.description).where(
                teams.c.namespace_id == namespace_id, teams.c.name == name
            )
        )
    ).first()
    return (row[0], row[1]) if row else None


async def create_team(
    conn: AsyncConnection, namespace_id: int, name: str, description: str | None, now: dt.datetime
) -> int:
    result = await conn.execute(
        teams.insert().values(namespace_id=namespace_id, name=name, description=description, created_at=now)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def update_team(conn: AsyncConnection, team_id: int, description: str | None) -> None:
    await conn.execute(update(teams).where(teams.c.id == team_id).values(description=description))


async def delete_team(conn: AsyncConnection, team_id: int) -> None:
    await conn.execute(delete(teams).where(teams.c.id == team_id))


async def list_teams(conn: AsyncConnection, namespace_id: int) -> list[tuple[str, str | None]]:
    rows = await conn.execute(
        select(teams.c.name, teams.c.description)
        .where(teams.c.namespace_id == namespace_id)
        .order_by(teams.c.name)
    )
    return [(r[0], r[1]) for r in rows]


async def add_team_member(conn: AsyncConnection, team_id: int, user_id: int) -> None:
    exists = (
        await conn.execute(
            select(team_members.c.team_id).where(
                team_members.c.team_id == team_id, team_members.c.user_id == user_id
            )
        )
    ).first()
    if not exists:
        await conn.execute(team_members.insert().values(team_id=team_id, user_id=user_id))


async def remove_team_member(conn: AsyncConnection, team_id: int, user_id: int) -> bool:
    result = await conn.execute(
        delete(team_members).where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
    )
    return bool(result.rowcount)


async def team_member_names(conn: AsyncConnection, team_id: int) -> list[str]:
    rows = await conn.execute(
        select(users.c.username)
        .select_from(team_members.join(users, users.c.id == team_members.c.user_id))
        .where(team_members.c.team_id == team_id)
        .order_by(users.c.username)
    )
    return list(rows.scalars())


async def set_team_repository_access(
    conn: AsyncConnection, team_id: int, repository_id: int, level: str
) -> None:
    await conn.execute(
        delete(team_repository_access).where(
            team_repository_access.c.team_id == team_id,
            team_repository_access.c.repository_id == repository_id,
        )
    )
    await conn.execute(
        team_repository_access.insert().values(team_id=team_id, repository_id=repository_id, level=level)
    )


async def remove_team_repository_access(conn: AsyncConnection, team_id: int, repository_id: int) -> bool:
    result = await conn.execute(
        delete(team_repository_access).where(
            team_repository_access.c.team_id == team_id,
            team_repository_access.c.repository_id == repository_id,
        )
    )
    return bool(result.rowcount)


async def set_team_namespace_access(
    conn: AsyncConnection, team_id: int, namespace_id: int, level: str
) -> None:
    await conn.execute(
        delete(team_namespace_access).where(
            team_namespace_access.c.team_id == team_id, team_namespace_access.c.namespace_id == namespace_id
        )
    )
    await conn.execute(
        team_namespace_access.insert().values(team_id=team_id, namespace_id=namespace_id, level=level)
    )


async def remove_team_namespace_access(conn: AsyncConnection, team_id: int, namespace_id: int) -> bool:
    result = await conn.execute(
        delete(team_namespace_access).where(
            team_namespace_access.c.team_id == team_id, team_namespace_access.c.namespace_id == namespace_id
        )
    )
    return bool(result.rowcount)


async def team_access(conn: AsyncConnection, team_id: int) -> list[tuple[str, str, str]]:
    """``(kind, name, level)`` for every grant of a team: kind is ``repository`` or ``namespace``."""
    repo_rows = await conn.execute(
        select(repositories.c.name, team_repository_access.c.level)
        .select_from(
            team_repository_access.join(
                repositories, repositories.c.id == team_repository_access.c.repository_id
            )
        )
        .where(team_repository_access.c.team_id == team_id)
    )
    ns_rows = await conn.execute(
        select(namespaces.c.name, team_namespace_access.c.level)
        .select_from(
            team_namespace_access.join(namespaces, namespaces.c.id == team_namespace_access.c.namespace_id)
        )
        .where(team_namespace_access.c.team_id == team_id)
    )
    out = [("repository", r[0], r[1]) for r in repo_rows] + [("namespace", r[0], r[1]) for r in ns_rows]
    return sorted(out)


async def granted_levels(
    conn: AsyncConnection, user_id: int, namespace_id: int, repository_id: int | None
) -> list[str]:
    """Every level the user's teams hold on the namespace or the repository."""
    my_teams = select(team_members.c.team_id).where(team_members.c.user_id == user_id).scalar_subquery()
    ns_levels = select(team_namespace_access.c.level).where(
        team_namespace_access.c.team_id.in_(my_teams), team_namespace_access.c.namespace_id == namespace_id
    )
    levels = list((await conn.execute(ns_levels)).scalars())
    if repository_id is not None:
        repo_levels = select(team_repository_access.c.level).where(
            team_repository_access.c.team_id.in_(my_teams),
            team_repository_access.c.repository_id == repository_id,
        )
        levels += list((await conn.execute(repo_levels)).scalars())
    return levels


# -- repositories with settings -----------------------------------------------------------
_REPO_COLUMNS = (
    repositories.c.id,
    repositories.c.name,
    namespaces.c.name,
    namespaces.c.id,
    repository_settings.c.visibility,
    repository_settings.c.description,
    repository_settings.c.immutable_tags,
    repositories.c.created_at,
    repository_settings.c.scan_on_push,
)
_REPO_FROM = repositories.join(
    repository_settings, repository_settings.c.repository_id == repositories.c.id
).join(namespaces, namespaces.c.id == repository_settings.c.namespace_id)


async def repository_info(conn: AsyncConnection, name: str) -> RepositoryInfo | None:
    row = (
        await conn.execute(select(*_REPO_COLUMNS).select_from(_REPO_FROM).where(repositories.c.name == name))
    ).first()
    return RepositoryInfo(*row) if row else None


async def list_repositories(
    conn: AsyncConnection,
    *,
    namespace_name: str | None,
    visibility: str | None,
    search: str | None,
    visible_to_user: int | None,
    everything: bool,
    offset: int,
    limit: int,
) -> tuple[list[RepositoryInfo], int]:
    """Repositories filtered by namespace, visibility and a name search, limited to what a caller
    may see: everything (administrators), or public ones plus those of the user's own namespace,
    organizations it owns, and teams' grants."""
    query = select(*_REPO_COLUMNS).select_from(_REPO_FROM)
    if namespace_name:
        query = query.where(namespaces.c.name == namespace_name)
    if visibility:
        query = query.where(repository_settings.c.visibility == visibility)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(repositories.c.name.like(f"%{escaped}%", escape="\\"))
    if not everything:
        conditions = [repository_settings.c.visibility == "public"]
        if visible_to_user is not None:
            my_teams = (
                select(team_members.c.team_id)
                .where(team_members.c.user_id == visible_to_user)
                .scalar_subquery()
            )
            own_ns = select(users.c.namespace_id).where(users.c.id == visible_to_user).scalar_subquery()
            member_ns = select(organization_members.c.namespace_id).where(
                organization_members.c.user_id == visible_to_user, organization_members.c.role == "owner"
            )
            team_ns = select(team_namespace_access.c.namespace_id).where(
                team_namespace_access.c.team_id.in_(my_teams)
            )
            team_repos = select(team_repository_access.c.repository_id).where(
                team_repository_access.c.team_id.in_(my_teams)
            )
            conditions += [
                repository_settings.c.namespace_id == own_ns,
                repository_settings.c.namespace_id.in_(member_ns),
                repository_settings.c.namespace_id.in_(team_ns),
                repositories.c.id.in_(team_repos),
            ]
        query = query.where(or_(*conditions))
    total = (await conn.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (await conn.execute(query.order_by(repositories.c.name).offset(offset).limit(limit))).all()
    return [RepositoryInfo(*r) for r in rows], int(total)


async def insert_repository_settings(
    conn: AsyncConnection,
    repository_id: int,
    namespace_id: int,
    visibility: str,
    description: str | None,
    immutable_tags: bool,
    created_by: str | None,
) -> None:
    await conn.execute(
        repository_settings.insert().values(
            repository_id=repository_id,
            namespace_id=namespace_id,
            visibility=visibility,
            description=description,
            immutable_tags=immutable_tags,
            created_by=created_by,
        )
    )


async def update_repository_settings(conn: AsyncConnection, repository_id: int, **values: Any) -> None:
    await conn.execute(
        update(repository_settings)
        .where(repository_settings.c.repository_id == repository_id)
        .values(**values)
    )


async def delete_repository(conn: AsyncConnection, repository_id: int) -> None:
    await conn.execute(delete(repositories).where(repositories.c.id == repository_id))


# -- tokens and keys ----------------------------------------------------------------------
async def insert_token(
    conn: AsyncConnection, user_id: int, label: str, token_hash: str, prefix: str, kind: str, now: dt.datetime
) -> int:
    result = await conn.execute(
        access_tokens.insert().values(
            user_id=user_id,
            label=label,
            token_hash=token_hash,
            token_prefix=prefix,
            is_active=True,
            kind=kind,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def token_by_hash(conn: AsyncConnection, token_hash: str) -> Any:
    return (
        await conn.execute(
            select(
                access_tokens.c.id,
                access_tokens.c.user_id,
                access_tokens.c.is_active,
                access_tokens.c.kind,
            ).where(access_tokens.c.token_hash == token_hash)
        )
    ).first()


async def touch_token(conn: AsyncConnection, token_id: int, now: dt.datetime) -> None:
    await conn.execute(update(access_tokens).where(access_tokens.c.id == token_id).values(last_used_at=now))


async def list_tokens(conn: AsyncConnection, user_id: int) -> list[Any]:
    return list(
        (
            await conn.execute(
                select(
                    access_tokens.c.id,
                    access_tokens.c.label,
                    access_tokens.c.token_prefix,
                    access_tokens.c.is_active,
                    access_tokens.c.created_at,
                    access_tokens.c.last_used_at,
                )
                .where(access_tokens.c.user_id == user_id, access_tokens.c.kind == "personal")
                .order_by(access_tokens.c.id)
            )
        ).all()
    )


async def update_token(conn: AsyncConnection, user_id: int, token_id: int, **values: Any) -> bool:
    result = await conn.execute(
        update(access_tokens)
        .where(
            access_tokens.c.id == token_id,
            access_tokens.c.user_id == user_id,
            access_tokens.c.kind == "personal",
        )
        .values(**values)
    )
    return bool(result.rowcount)


async def delete_token(conn: AsyncConnection, user_id: int, token_id: int) -> bool:
    result = await conn.execute(
        delete(access_tokens).where(
            access_tokens.c.id == token_id,
            access_tokens.c.user_id == user_id,
            access_tokens.c.kind == "personal",
        )
    )
    return bool(result.rowcount)


async def signing_keys_all(conn: AsyncConnection) -> list[tuple[str, str, dt.datetime, dt.datetime | None]]:
    rows = await conn.execute(
        select(
            signing_keys.c.kid,
            signing_keys.c.private_pem,
            signing_keys.c.created_at,
            signing_keys.c.retired_at,
        ).order_by(signing_keys.c.created_at)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def insert_signing_key(conn: AsyncConnection, kid: str, pem: str, now: dt.datetime) -> None:
    await conn.execute(signing_keys.insert().values(kid=kid, private_pem=pem, created_at=now))


async def retire_signing_keys(conn: AsyncConnection, except_kid: str, now: dt.datetime) -> None:
    await conn.execute(
        update(signing_keys)
        .where(signing_keys.c.kid != except_kid, signing_keys.c.retired_at.is_(None))
        .values(retired_at=now)
    )


# -- throttling and audit -----------------------------------------------------------------
async def login_failure(conn: AsyncConnection, key: str) -> Any:
    return (
        await conn.execute(
            select(
                login_failures.c.failures, login_failures.c.window_start, login_failures.c.locked_until
            ).where(login_failures.c.key == key)
        )
    ).first()


async def set_login_failure(
    conn: AsyncConnection,
    key: str,
    failures: int,
    window_start: dt.datetime,
    locked_until: dt.datetime | None,
) -> None:
    await conn.execute(delete(login_failures).where(login_failures.c.key == key))
    await conn.execute(
        login_failures.insert().values(
            key=key, failures=failures, window_start=window_start, locked_until=locked_until
        )
    )


async def clear_login_failures(conn: AsyncConnection, key: str) -> None:
    await conn.execute(delete(login_failures).where(login_failures.c.key == key))


async def insert_audit(
    conn: AsyncConnection,
    at: dt.datetime,
    actor: str | None,
    action: str,
    target: str | None,
    detail: str | None,
    remote_addr: str | None,
) -> None:
    await conn.execute(
        audit_log.insert().values(
            at=at, actor=actor, action=action, target=target, detail=detail, remote_addr=remote_addr
        )
    )


async def list_audit(conn: AsyncConnection, offset: int, limit: int) -> tuple[list[Any], int]:
    total = (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one()
    rows = (
        await conn.execute(
            select(
                audit_log.c.id,
                audit_log.c.at,
                audit_log.c.actor,
                audit_log.c.action,
                audit_log.c.target,
                audit_log.c.detail,
                audit_log.c.remote_addr,
            )
            .order_by(audit_log.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return list(rows), int(total)
