"""Manifests and tags: push (validate, classify, store, tag), pull, delete, list, referrers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import content as q
from moorage.db.engine import Database
from moorage.db.gc import hold_references as gc_fence
from moorage.oci import cnab
from moorage.oci import mediatypes as mt
from moorage.oci.classify import INVOCATION, INVOCATION_ELIGIBLE, Classification, classify, invocation_digests
from moorage.oci.digest import compute, is_digest, parse_digest
from moorage.oci.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    PayloadTooLarge,
    TagImmutable,
)
from moorage.oci.manifest import Descriptor, Manifest, parse_manifest
from moorage.oci.reference import is_valid_tag, validate_name, validate_tag
from moorage.services import events as ev
from moorage.services.blobs import BlobService
from moorage.services.clock import Clock
from moorage.services.events import EventLog

#: Largest config blob read to learn an image's platform.
_MAX_CONFIG_READ = 1 << 20
#: Largest bundle config (bundle.json) accepted for an application.
_MAX_BUNDLE_CONFIG = 4 << 20


@dataclass(frozen=True, slots=True)
class PulledManifest:
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: str
    subject: str | None
    classification: Classification


class PushSubscriber(Protocol):
    """Told of manifest pushes (scan on push subscribes): asked inside the push's transaction
    whether it wants the manifest, then handed it once the push has committed."""

    async def wants_push(self, conn: AsyncConnection, repository_id: int, kind: str) -> bool: ...

    async def take_push(self, repository: str, digest: str) -> None: ...


@dataclass
class ManifestService:
    db: Database
    blobs: BlobService
    clock: Clock
    max_manifest_size: int
    events: EventLog
    #: scan on push: see ``PushSubscriber``
    push_subscriber: PushSubscriber | None = None

    async def get(self, repository: str, reference: str, pulled_by: str | None = None) -> PulledManifest:
        """A manifest by tag or digest; the pull is recorded (``TAG_PULL`` / ``MANIFEST_PULL``)."""
        validate_name(repository)
        async with self.db.read() as conn:
            if is_digest(reference):
                parse_digest(reference)
                found = await q.manifest_by_digest(conn, repository, reference)
            elif is_valid_tag(reference):
                found = await q.manifest_by_tag(conn, repository, reference)
            else:
                found = None  # a tag that cannot exist is simply not there
            if found is None and await q.repository_id(conn, repository) is None:
                raise NameUnknown(
                    f"repository {repository!r} is not known to the registry", {"name": repository}
                )
        if found is None:
            raise ManifestUnknown(
                f"manifest {reference!r} is not in repository {repository!r}", {"reference": reference}
            )
        self.events.record_pull(repository, reference, found.digest, pulled_by)
        return PulledManifest(found.digest, found.media_type, found.content)

    async def put(
        self,
        repository: str,
        reference: str,
        content: bytes,
        content_type: str | None,
        pushed_by: str | None = None,
    ) -> PushedManifest:
        validate_name(repository)
        if len(content) > self.max_manifest_size:
            raise PayloadTooLarge(
                f"manifest of {len(content)} bytes exceeds the limit of {self.max_manifest_size} bytes",
                {"limit": self.max_manifest_size},
            )
        tag: str | None = None
        if is_digest(reference):
            claimed = parse_digest(reference)
            digest = compute(content, claimed.algorithm)
            if digest != claimed:
                raise DigestInvalid(
                    f"manifest digest is {digest}, not {claimed}",
                    {"expected": str(claimed), "actual": str(digest)},
                )
        else:
            tag = validate_tag(reference)
            digest = compute(content)
        manifest = parse_manifest(content, content_type)
        config = await self._read_config(manifest.config)
        classification = classify(manifest, config)
        now = self.clock()
        async with self.db.write() as conn:
            await gc_fence(conn)  # what it references cannot be collected until it commits
            rid = await q.ensure_repository(
                conn, repository, now, on_created=self.blobs.on_repository_created
            )
            blob_digests = manifest.blob_digests()
            blob_sizes = await q.linked_blob_sizes(conn, rid, blob_digests)
            missing = sorted(set(blob_digests) - blob_sizes.keys())
            if missing:
                raise ManifestBlobUnknown(
                    f"manifest references blobs not in repository {repository!r}: {', '.join(missing[:5])}",
                    {"missing": missing},
                )
            children = [d.digest for d in manifest.manifests]
            child_sizes = await q.manifest_sizes(conn, rid, children)
            missing = sorted(set(children) - child_sizes.keys())
            if missing:
                raise ManifestBlobUnknown(
                    f"index references manifests not in repository {repository!r}: {', '.join(missing[:5])}",
                    {"missing": missing},
                )
            if classification.bundle is not None:
                await self._check_bundle(conn, repository, classification.bundle)
                await q.reclassify(
                    conn, rid, invocation_digests(manifest), INVOCATION, sorted(INVOCATION_ELIGIBLE)
                )
            manifest_id = await q.insert_manifest(
                conn,
                rid,
                self._record(
                    manifest, classification, content, str(digest), blob_sizes, child_sizes, pushed_by
                ),
                now,
            )
            if tag is not None:
                current = await q.tag_target(conn, rid, tag)
                if current is not None and current != manifest_id and await q.tags_immutable(conn, rid):
                    raise TagImmutable(
                        f"tag {tag!r} in repository {repository!r} is immutable and already points at another "
                        "manifest: push under a new tag",
                        {"repository": repository, "tag": tag},
                    )
                await q.set_tag(conn, rid, tag, manifest_id, now, pushed_by)
            await self._emit_push(
                conn, repository, tag, str(digest), classification, manifest, now, pushed_by
            )
            # Asked here, in the push's transaction, rather than in a transaction of its own
            # after it: a fifth of a manifest PUT's CPU went there (bench/README.md).
            subscriber = self.push_subscriber
            wanted = subscriber is not None and await subscriber.wants_push(conn, rid, classification.kind)
        if wanted and subscriber is not None:
            await subscriber.take_push(repository, str(digest))
        return PushedManifest(
            str(digest), manifest.subject.digest if manifest.subject else None, classification
        )

    async def _emit_push(
        self,
        conn: AsyncConnection,
        repository: str,
        tag: str | None,
        digest: str,
        classification: Classification,
        manifest: Manifest,
        now: Any,
        pushed_by: str | None,
    ) -> None:
        platform = classification.platform
        contents: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "artifactKind": classification.kind,
            "artifactType": classification.artifact_type or manifest.effective_artifact_type,
            "os": platform.os if platform else None,
            "architecture": platform.architecture if platform else None,
            "pushedAt": now.isoformat(),
        }
        new = [
            self.events.event(
                ev.MANIFEST_PUSH, repository=repository, digest=digest, actor=pushed_by, contents=contents
            )
        ]
        if tag is not None:
            new.append(
                self.events.event(
                    ev.TAG_PUSH,
                    repository=repository,
                    tag=tag,
                    digest=digest,
                    actor=pushed_by,
                    contents=contents,
                )
            )
        await self.events.emit_all(conn, new)

    async def _check_bundle(self, conn: AsyncConnection, repository: str, index: cnab.BundleIndex) -> None:
        """An application's bundle config must parse, and name exactly the images its index holds."""
        stored = await q.manifest_by_digest(conn, repository, index.config.digest)
        if stored is None:  # children were checked to exist just before
            raise ManifestBlobUnknown(
                f"bundle config manifest {index.config.digest} is not in {repository!r}"
            )
        config_blob = cnab.config_blob_descriptor(parse_manifest(stored.content, stored.media_type))
        data = await self.blobs.read_small(config_blob.digest, _MAX_BUNDLE_CONFIG)
        if data is None:
            raise ManifestInvalid(
                f"manifest invalid: the bundle config blob {config_blob.digest} is missing or larger than "
                f"{_MAX_BUNDLE_CONFIG} bytes"
            )
        cnab.build_bundle(index, data)

    @staticmethod
    def _record(
        manifest: Manifest,
        classification: Classification,
        content: bytes,
        digest: str,
        blob_sizes: dict[str, int],
        child_sizes: dict[str, int],
        pushed_by: str | None,
    ) -> q.NewManifest:
        platform = classification.platform
        return q.NewManifest(
            digest=digest,
            media_type=manifest.media_type,
            # Referrers API: a manifest with a subject and no artifactType reports its config's type.
            artifact_type=classification.artifact_type
            or manifest.effective_artifact_type
            or (manifest.config.media_type if manifest.subject and manifest.config else None),
            kind=classification.kind,
            config_digest=manifest.config.digest if manifest.config else None,
            subject_digest=manifest.subject.digest if manifest.subject else None,
            platform_os=platform.os if platform else None,
            platform_architecture=platform.architecture if platform else None,
            platform_variant=platform.variant if platform else None,
            annotations=json.dumps(manifest.annotations, sort_keys=True) if manifest.annotations else None,
            size=len(content),
            total_size=len(content) + sum(blob_sizes.values()) + sum(child_sizes.values()),
            content=content,
            blob_digests=manifest.blob_digests(),
            child_digests=[d.digest for d in manifest.manifests],
            pushed_by=pushed_by,
        )

    async def _read_config(self, config: Descriptor | None) -> dict[str, Any] | None:
        """The parsed config blob of an image, for its platform; ``None`` when not JSON or absent."""
        if config is None or config.media_type in (mt.OCI_EMPTY,) or config.size > _MAX_CONFIG_READ:
            return None
        data = await self.blobs.read_small(config.digest, _MAX_CONFIG_READ)
        if data is None:
            return None
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None
        return parsed if isinstance(parsed, dict) else None

    async def delete(self, repository: str, reference: str, deleted_by: str | None = None) -> None:
        """Delete a manifest by digest (and every tag on it), or just a tag."""
        validate_name(repository)
        async with self.db.write() as conn:
            rid = await q.repository_id(conn, repository)
            if rid is None:
                raise NameUnknown(
                    f"repository {repository!r} is not known to the registry", {"name": repository}
                )
            now = self.clock()
            stamp = {"deletedAt": now.isoformat()}
            new = []
            if is_digest(reference):
                parse_digest(reference)
                summary = await q.manifest_summary(conn, rid, reference)
                tags = await q.tags_of(conn, rid, summary.id) if summary is not None else []
                deleted = summary is not None and await q.delete_manifest(conn, rid, reference)
                if summary is not None:
                    contents = {**stamp, "artifactKind": summary.kind, "mediaType": summary.media_type}
                    for tag in tags:  # the tags went with their manifest
                        new.append(
                            self.events.event(
                                ev.TAG_DELETE,
                                repository=repository,
                                tag=tag,
                                digest=reference,
                                actor=deleted_by,
                                contents=contents,
                            )
                        )
                    new.append(
                        self.events.event(
                            ev.MANIFEST_DELETE,
                            repository=repository,
                            digest=reference,
                            actor=deleted_by,
                            contents=contents,
                        )
                    )
            else:
                tag = validate_tag(reference)
                target = await q.manifest_by_tag(conn, repository, tag)
                deleted = await q.delete_tag(conn, rid, tag)
                if deleted:
                    new.append(
                        self.events.event(
                            ev.TAG_DELETE,
                            repository=repository,
                            tag=tag,
                            digest=target.digest if target else None,
                            actor=deleted_by,
                            contents=stamp,
                        )
                    )
            await self.events.emit_all(conn, new)
        if not deleted:
            raise ManifestUnknown(
                f"manifest {reference!r} is not in repository {repository!r}", {"reference": reference}
            )

    async def tags(self, repository: str, last: str | None, limit: int | None) -> list[str]:
        validate_name(repository)
        async with self.db.read() as conn:
            rid = await q.repository_id(conn, repository)
            if rid is None:
                raise NameUnknown(
                    f"repository {repository!r} is not known to the registry", {"name": repository}
                )
            return await q.list_tags(conn, rid, last, limit)

    async def referrers(
        self, repository: str, subject: str, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose ``subject`` is ``subject``, as the referrers API lists them."""
        validate_name(repository)
        parse_digest(subject)
        async with self.db.read() as conn:
            rid = await q.repository_id(conn, repository)
            if rid is None:
                raise NameUnknown(
                    f"repository {repository!r} is not known to the registry", {"name": repository}
                )
            rows = await q.referrers(conn, rid, subject, artifact_type)
        out = []
        for row in rows:
            desc: dict[str, Any] = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
            if row.artifact_type:
                desc["artifactType"] = row.artifact_type
            if row.annotations:
                desc["annotations"] = json.loads(row.annotations)
            out.append(desc)
        return out
