"""Queries over repositories, blobs, manifests and tags.

Every function takes an open connection, so the caller (a service) decides what one
transaction covers. Inserts that can race are written as ``ON CONFLICT`` upserts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from moorage.db.tables import (
    blobs,
    manifest_blobs,
    manifest_children,
    manifests,
    namespaces,
    repositories,
    repository_blobs,
    repository_settings,
    tags,
)
from moorage.oci.reference import namespace_of


@dataclass(frozen=True, slots=True)
class StoredManifest:
    id: int
    repository_id: int
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """A manifest row without its content (for listings and the referrers API)."""

    id: int
    digest: str
    media_type: str
    artifact_type: str | None
    kind: str
    size: int
    total_size: int
    annotations: str | None
    platform_os: str | None
    platform_architecture: str | None
    platform_variant: str | None
    pushed_at: dt.datetime
    pushed_by: str | None


@dataclass(frozen=True, slots=True)
class NewManifest:
    digest: str
    media_type: str
    artifact_type: str | None
    kind: str
    config_digest: str | None
    subject_digest: str | None
    platform_os: str | None
    platform_architecture: str | None
    platform_variant: str | None
    annotations: str | None
    size: int
    total_size: int
    content: bytes
    blob_digests: Sequence[str]
    child_digests: Sequence[str]
    pushed_by: str | None


def _insert(conn: AsyncConnection, table: Any) -> Insert:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database {dialect!r} is not supported")


def _per_dialect(build: Any) -> dict[str, Any]:
    """``build(insert)`` for each supported dialect's ``insert`` (ON CONFLICT is dialect-specific)."""
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}


def _for(conn: AsyncConnection, statements: dict[str, Any]) -> Any:
    try:
        return statements[conn.dialect.name]
    except KeyError:
        raise NotImplementedError(f"database {conn.dialect.name!r} is not supported") from None


def _sortable(conn: AsyncConnection, column: Any) -> ColumnElement[Any]:
    """Byte-wise ordering, as the distribution-spec's lexical tag order needs."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column  # type: ignore[no-any-return]


# -- repositories -------------------------------------------------------------------------
# Hot-path statements are built once: building a select and its cache key per call was
# ~15-20% of the server CPU of a manifest GET (profiled with py-spy, bench/README.md).
_REPOSITORY_ID = select(repositories.c.id).where(repositories.c.name == bindparam("name"))


async def repository_id(conn: AsyncConnection, name: str) -> int | None:
    return (await conn.execute(_REPOSITORY_ID, {"name": name})).scalar()


# Built once too: a push that creates its repository built and cached these each time (~0.3 ms).
_INSERT_NAMESPACE = _per_dialect(lambda insert: insert(namespaces).on_conflict_do_nothing())
_NAMESPACE_ID = select(namespaces.c.id).where(namespaces.c.name == bindparam("name"))
_INSERT_REPOSITORY = _per_dialect(lambda insert: insert(repositories).on_conflict_do_nothing())
_INSERT_REPOSITORY_SETTINGS = repository_settings.insert()


async def ensure_repository(
    conn: AsyncConnection,
    name: str,
    now: dt.datetime,
    created_by: str | None = None,
    visibility: str = "private",
    on_created: Callable[[AsyncConnection, str], Awaitable[None]] | None = None,
) -> int:
    """Id of repository ``name``, creating it (and its namespace, as an organization) when missing.

    Whether the caller may create it is decided before, by the access service. ``on_created``
    runs inside the transaction when this call created it (``REPO_CREATED``).
    """
    rid = await repository_id(conn, name)
    if rid is not None:
        return rid
    ns_name = namespace_of(name)
    await conn.execute(
        _for(conn, _INSERT_NAMESPACE), {"name": ns_name, "kind": "organization", "created_at": now}
    )
    ns_id = (await conn.execute(_NAMESPACE_ID, {"name": ns_name})).scalar_one()
    result = await conn.execute(_for(conn, _INSERT_REPOSITORY), {"name": name, "created_at": now})
    rid = await repository_id(conn, name)
    assert rid is not None
    if result.rowcount:
        await conn.execute(
            _INSERT_REPOSITORY_SETTINGS,
            {
                "repository_id": rid,
                "namespace_id": ns_id,
                "visibility": visibility,
                "immutable_tags": False,
                "created_by": created_by,
            },
        )
        if on_created is not None:
            await on_created(conn, name)
    return rid


async def catalog(conn: AsyncConnection, last: str | None, limit: int) -> list[str]:
    query = select(repositories.c.name).order_by(_sortable(conn, repositories.c.name)).limit(limit)
    if last:
        query = query.where(_sortable(conn, repositories.c.name) > last)
    return list((await conn.execute(query)).scalars())


# -- blobs --------------------------------------------------------------------------------
_RECORD_BLOB = _per_dialect(lambda insert: insert(blobs).on_conflict_do_nothing())
_LINK_BLOB = _per_dialect(lambda insert: insert(repository_blobs).on_conflict_do_nothing())
_BLOB_SIZE = select(blobs.c.size).where(blobs.c.digest == bindparam("digest"))


async def record_blob(conn: AsyncConnection, digest: str, size: int, now: dt.datetime) -> None:
    await conn.execute(_for(conn, _RECORD_BLOB), {"digest": digest, "size": size, "created_at": now})


async def link_blob(conn: AsyncConnection, repo_id: int, digest: str, now: dt.datetime) -> None:
    await conn.execute(
        _for(conn, _LINK_BLOB), {"repository_id": repo_id, "digest": digest, "created_at": now}
    )


async def blob_size(conn: AsyncConnection, digest: str) -> int | None:
    return (await conn.execute(_BLOB_SIZE, {"digest": digest})).scalar()


_LINKED_BLOB_SIZE = (
    select(blobs.c.size)
    .select_from(
        repository_blobs.join(blobs, blobs.c.digest == repository_blobs.c.digest).join(
            repositories, repositories.c.id == repository_blobs.c.repository_id
        )
    )
    .where(repositories.c.name == bindparam("repo"), repository_blobs.c.digest == bindparam("digest"))
)


async def linked_blob_size(conn: AsyncConnection, repo_name: str, digest: str) -> int | None:
    """Size of ``digest`` if it is visible in repository ``repo_name``."""
    return (await conn.execute(_LINKED_BLOB_SIZE, {"repo": repo_name, "digest": digest})).scalar()


async def unlink_blob(conn: AsyncConnection, repo_id: int, digest: str) -> bool:
    result = await conn.execute(
        delete(repository_blobs).where(
            repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest == digest
        )
    )
    return bool(result.rowcount)


_LINKED_BLOB_SIZES = (
    select(blobs.c.digest, blobs.c.size)
    .select_from(repository_blobs.join(blobs, blobs.c.digest == repository_blobs.c.digest))
    .where(
        repository_blobs.c.repository_id == bindparam("repo_id"),
        repository_blobs.c.digest.in_(bindparam("digests", expanding=True)),
    )
)


async def linked_blob_sizes(conn: AsyncConnection, repo_id: int, digests: Iterable[str]) -> dict[str, int]:
    """Size of each of ``digests`` linked into the repository; the others are absent from it."""
    wanted = set(digests)
    if not wanted:
        return {}
    rows = await conn.execute(_LINKED_BLOB_SIZES, {"repo_id": repo_id, "digests": sorted(wanted)})
    return {d: s for d, s in rows}


# -- manifests ----------------------------------------------------------------------------
_SUMMARY_COLUMNS = (
    manifests.c.id,
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.artifact_type,
    manifests.c.kind,
    manifests.c.size,
    manifests.c.total_size,
    manifests.c.annotations,
    manifests.c.platform_os,
    manifests.c.platform_architecture,
    manifests.c.platform_variant,
    manifests.c.pushed_at,
    manifests.c.pushed_by,
)


async def missing_manifests(conn: AsyncConnection, repo_id: int, digests: Iterable[str]) -> list[str]:
    wanted = set(digests)
    if not wanted:
        return []
    present = set(
        (
            await conn.execute(
                select(manifests.c.digest).where(
                    manifests.c.repository_id == repo_id, manifests.c.digest.in_(wanted)
                )
            )
        ).scalars()
    )
    return sorted(wanted - present)


_MANIFEST_SIZES = select(manifests.c.digest, manifests.c.total_size).where(
    manifests.c.repository_id == bindparam("repo_id"),
    manifests.c.digest.in_(bindparam("digests", expanding=True)),
)


async def manifest_sizes(conn: AsyncConnection, repo_id: int, digests: Iterable[str]) -> dict[str, int]:
    wanted = set(digests)
    if not wanted:
        return {}
    rows = await conn.execute(_MANIFEST_SIZES, {"repo_id": repo_id, "digests": sorted(wanted)})
    return {d: s for d, s in rows}


_CONTENT_COLUMNS = (
    manifests.c.id,
    manifests.c.repository_id,
    manifests.c.digest,
    manifests.c.media_type,
    manifests.c.content,
)


_MANIFEST_BY_DIGEST = (
    select(*_CONTENT_COLUMNS)
    .select_from(manifests.join(repositories, repositories.c.id == manifests.c.repository_id))
    .where(repositories.c.name == bindparam("repo"), manifests.c.digest == bindparam("digest"))
)
_MANIFEST_BY_TAG = (
    select(*_CONTENT_COLUMNS)
    .select_from(
        tags.join(manifests, manifests.c.id == tags.c.manifest_id).join(
            repositories, repositories.c.id == tags.c.repository_id
        )
    )
    .where(repositories.c.name == bindparam("repo"), tags.c.name == bindparam("tag"))
)


async def manifest_by_digest(conn: AsyncConnection, repo_name: str, digest: str) -> StoredManifest | None:
    row = (await conn.execute(_MANIFEST_BY_DIGEST, {"repo": repo_name, "digest": digest})).first()
    return StoredManifest(*row) if row else None


async def manifest_by_tag(conn: AsyncConnection, repo_name: str, tag: str) -> StoredManifest | None:
    row = (await conn.execute(_MANIFEST_BY_TAG, {"repo": repo_name, "tag": tag})).first()
    return StoredManifest(*row) if row else None


_MANIFEST_ID = select(manifests.c.id).where(
    manifests.c.repository_id == bindparam("repo_id"), manifests.c.digest == bindparam("digest")
)
# One statement stores a new manifest and returns its id; on a conflict (already stored,
# possibly by a concurrent push) it returns no row and the id is looked up.
_INSERT_MANIFEST = _per_dialect(
    lambda insert: insert(manifests).on_conflict_do_nothing().returning(manifests.c.id)
)
_INSERT_MANIFEST_BLOBS = _per_dialect(lambda insert: insert(manifest_blobs).on_conflict_do_nothing())
_INSERT_MANIFEST_CHILDREN = _per_dialect(lambda insert: insert(manifest_children).on_conflict_do_nothing())


async def insert_manifest(conn: AsyncConnection, repo_id: int, new: NewManifest, now: dt.datetime) -> int:
    """Store a manifest and its references; returns its id (the existing one when already stored)."""
    values = {
        "repository_id": repo_id,
        "digest": new.digest,
        "media_type": new.media_type,
        "artifact_type": new.artifact_type,
        "kind": new.kind,
        "config_digest": new.config_digest,
        "subject_digest": new.subject_digest,
        "platform_os": new.platform_os,
        "platform_architecture": new.platform_architecture,
        "platform_variant": new.platform_variant,
        "annotations": new.annotations,
        "size": new.size,
        "total_size": new.total_size,
        "content": new.content,
        "pushed_at": now,
        "pushed_by": new.pushed_by,
    }
    inserted = (await conn.execute(_for(conn, _INSERT_MANIFEST), values)).scalar()
    if inserted is None:  # already stored: its references were stored with it
        existing = await conn.execute(_MANIFEST_ID, {"repo_id": repo_id, "digest": new.digest})
        return int(existing.scalar_one())
    manifest_id = int(inserted)
    if new.blob_digests:
        await conn.execute(
            _for(conn, _INSERT_MANIFEST_BLOBS),
            [{"manifest_id": manifest_id, "digest": d} for d in sorted(set(new.blob_digests))],
        )
    if new.child_digests:
        await conn.execute(
            _for(conn, _INSERT_MANIFEST_CHILDREN),
            [{"manifest_id": manifest_id, "child_digest": d} for d in sorted(set(new.child_digests))],
        )
    return manifest_id


async def reclassify(
    conn: AsyncConnection, repo_id: int, digests: Sequence[str], kind: str, from_kinds: Sequence[str]
) -> None:
    """Change the stored kind of manifests (e.g. images an application names as its invocation image)."""
    if not digests:
        return
    await conn.execute(
        update(manifests)
        .where(
            manifests.c.repository_id == repo_id,
            manifests.c.digest.in_(digests),
            manifests.c.kind.in_(from_kinds),
        )
        .values(kind=kind)
    )


async def delete_manifest(conn: AsyncConnection, repo_id: int, digest: str) -> bool:
    result = await conn.execute(
        delete(manifests).where(manifests.c.repository_id == repo_id, manifests.c.digest == digest)
    )
    return bool(result.rowcount)


async def referrers(
    conn: AsyncConnection, repo_id: int, subject: str, artifact_type: str | None
) -> list[ManifestSummary]:
    query = (
        select(*_SUMMARY_COLUMNS)
        .where(manifests.c.repository_id == repo_id, manifests.c.subject_digest == subject)
        .order_by(manifests.c.id)
    )
    if artifact_type is not None:
        query = query.where(manifests.c.artifact_type == artifact_type)
    return [ManifestSummary(**row._mapping) for row in await conn.execute(query)]


# -- tags ---------------------------------------------------------------------------------
_TAG_TARGET = select(tags.c.manifest_id).where(
    tags.c.repository_id == bindparam("repo_id"), tags.c.name == bindparam("tag")
)
_TAGS_IMMUTABLE = select(repository_settings.c.immutable_tags).where(
    repository_settings.c.repository_id == bindparam("repo_id")
)


def _upsert_tag(insert: Any) -> Any:
    stmt = insert(tags)
    return stmt.on_conflict_do_update(
        index_elements=[tags.c.repository_id, tags.c.name],
        set_={
            "manifest_id": stmt.excluded.manifest_id,
            "updated_at": stmt.excluded.updated_at,
            "updated_by": stmt.excluded.updated_by,
        },
    )


_SET_TAG = _per_dialect(_upsert_tag)


async def tag_target(conn: AsyncConnection, repo_id: int, tag: str) -> int | None:
    return (await conn.execute(_TAG_TARGET, {"repo_id": repo_id, "tag": tag})).scalar()


async def tags_immutable(conn: AsyncConnection, repo_id: int) -> bool:
    return bool((await conn.execute(_TAGS_IMMUTABLE, {"repo_id": repo_id})).scalar())


async def set_tag(
    conn: AsyncConnection, repo_id: int, tag: str, manifest_id: int, now: dt.datetime, by: str | None
) -> None:
    await conn.execute(
        _for(conn, _SET_TAG),
        {
            "repository_id": repo_id,
            "name": tag,
            "manifest_id": manifest_id,
            "updated_at": now,
            "updated_by": by,
        },
    )


async def delete_tag(conn: AsyncConnection, repo_id: int, tag: str) -> bool:
    result = await conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.name == tag))
    return bool(result.rowcount)


async def list_tags(conn: AsyncConnection, repo_id: int, last: str | None, limit: int | None) -> list[str]:
    name = _sortable(conn, tags.c.name)
    query = select(tags.c.name).where(tags.c.repository_id == repo_id).order_by(name)
    if last:
        query = query.where(name > last)
    if limit is not None:
        query = query.limit(limit)
    return list((await conn.execute(query)).scalars())


@dataclass(frozen=True, slots=True)
class TagRow:
    name: str
    updated_at: dt.datetime
    updated_by: str | None
    manifest: ManifestSummary


async def tags_with_manifests(conn: AsyncConnection, repo_id: int) -> list[TagRow]:
    query = (
        select(tags.c.name, tags.c.updated_at, tags.c.updated_by, *_SUMMARY_COLUMNS)
        .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
        .where(tags.c.repository_id == repo_id)
        .order_by(_sortable(conn, tags.c.name))
    )
    out = []
    for row in await conn.execute(query):
        values = row._mapping
        summary = ManifestSummary(**{c.name: values[c.name] for c in _SUMMARY_COLUMNS})
        out.append(TagRow(row[0], row[1], row[2], summary))
    return out


async def manifest_summary(conn: AsyncConnection, repo_id: int, digest: str) -> ManifestSummary | None:
    row = (
        await conn.execute(
            select(*_SUMMARY_COLUMNS).where(
                manifests.c.repository_id == repo_id, manifests.c.digest == digest
            )
        )
    ).first()
    return ManifestSummary(**row._mapping) if row else None


async def child_platforms(
    conn: AsyncConnection, repo_id: int, manifest_ids: Sequence[int]
) -> dict[int, list[tuple[str, str | None, str | None, str | None, str]]]:
    """For each index, its children: ``(digest, os, architecture, variant, kind)``."""
    if not manifest_ids:
        return {}
    child = manifests.alias("child")
    query = (
        select(
            manifest_children.c.manifest_id,
            child.c.digest,
            child.c.platform_os,
            child.c.platform_architecture,
            child.c.platform_variant,
            child.c.kind,
        )
        .select_from(
            manifest_children.join(
                child,
                (child.c.digest == manifest_children.c.child_digest) & (child.c.repository_id == repo_id),
            )
        )
        .where(manifest_children.c.manifest_id.in_(manifest_ids))
        .order_by(child.c.id)
    )
    out: dict[int, list[tuple[str, str | None, str | None, str | None, str]]] = {}
    for row in await conn.execute(query):
        out.setdefault(row[0], []).append((row[1], row[2], row[3], row[4], row[5]))
    return out


async def tags_of(conn: AsyncConnection, repo_id: int, manifest_id: int) -> list[str]:
    query = select(tags.c.name).where(tags.c.repository_id == repo_id, tags.c.manifest_id == manifest_id)
    return sorted((await conn.execute(query)).scalars())


async def tags_by_digest(conn: AsyncConnection, repo_id: int, digests: Sequence[str]) -> dict[str, list[str]]:
    if not digests:
        return {}
    query = (
        select(manifests.c.digest, tags.c.name)
        .select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id))
        .where(tags.c.repository_id == repo_id, manifests.c.digest.in_(digests))
    )
    out: dict[str, list[str]] = {}
    for digest, name in await conn.execute(query):
        out.setdefault(digest, []).append(name)
    return {k: sorted(v) for k, v in out.items()}
