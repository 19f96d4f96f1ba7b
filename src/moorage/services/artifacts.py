"""What a repository holds, typed: tag listings and per-manifest details (layers, platforms,
an application's bundle). Types were decided on push; here they are only read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from moorage.db import content as q
from moorage.db.engine import Database
from moorage.oci import cnab
from moorage.oci.classify import APPLICATION, MULTI_ARCH
from moorage.oci.digest import parse_digest
from moorage.oci.manifest import parse_manifest
from moorage.services.access import AccessService, Level, Principal
from moorage.services.blobs import BlobService
from moorage.services.errors import NotFound
from moorage.services.scanning import ScanService

_MAX_CONFIG = 4 << 20


def _platform(os_: str | None, arch: str | None, variant: str | None) -> dict[str, str | None] | None:
    if not os_ or not arch:
        return None
    return {"os": os_, "architecture": arch, "variant": variant}


@dataclass
class ArtifactService:
    db: Database
    access: AccessService
    blobs: BlobService
    #: the scans behind each tag's ``scan`` summary (wired in services/container.py)
    scans: ScanService | None = None

    async def _repo(self, actor: Principal | None, repository: str) -> int:
        access = await self.access.repository(actor, repository)
        if not access.exists or access.level < Level.READ_ONLY:
            raise NotFound(f"repository {repository!r} does not exist")
        async with self.db.read() as conn:
            rid = await q.repository_id(conn, repository)
        if rid is None:
            raise NotFound(f"repository {repository!r} does not exist")
        return rid

    async def list_tags(self, actor: Principal | None, repository: str) -> list[dict[str, Any]]:
        """Every tag with its type, digest, media type, artifact type, platforms, size and push record."""
        rid = await self._repo(actor, repository)
        async with self.db.read() as conn:
            rows = await q.tags_with_manifests(conn, rid)
            indexes = [r.manifest.id for r in rows if r.manifest.kind == MULTI_ARCH]
            children = await q.child_platforms(conn, rid, indexes)
        scans = (
            await self.scans.summaries(repository, [r.manifest.digest for r in rows]) if self.scans else {}
        )
        out = []
        for row in rows:
            m = row.manifest
            if m.kind == MULTI_ARCH:
                platforms = [
                    p for c in children.get(m.id, []) if (p := _platform(c[1], c[2], c[3])) is not None
                ]
            else:
                own = _platform(m.platform_os, m.platform_architecture, m.platform_variant)
                platforms = [own] if own else []
            out.append(
                {
                    "name": row.name,
                    "type": m.kind,
                    "digest": m.digest,
                    "mediaType": m.media_type,
                    "artifactType": m.artifact_type,
                    "platforms": platforms,
                    "size": m.total_size,
                    "pushedAt": row.updated_at,
                    "pushedBy": row.updated_by,
                    "scan": scans.get(m.digest),
                }
            )
        return out

    async def manifest_detail(self, actor: Principal | None, repository: str, digest: str) -> dict[str, Any]:
        """A manifest in full: for an image its config and layers, for a multi-arch image each
        child's platform and digest, for an application its bundle."""
        parse_digest(digest)
        rid = await self._repo(actor, repository)
        async with self.db.read() as conn:
            summary = await q.manifest_summary(conn, rid, digest)
            stored = await q.manifest_by_digest(conn, repository, digest)
            if summary is None or stored is None:
                raise NotFound(f"manifest {digest} is not in repository {repository!r}")
            tag_names = await q.tags_of(conn, rid, summary.id)
            children = (await q.child_platforms(conn, rid, [summary.id])).get(summary.id, [])
        manifest = parse_manifest(stored.content, stored.media_type)
        own = _platform(summary.platform_os, summary.platform_architecture, summary.platform_variant)
        detail: dict[str, Any] = {
            "digest": summary.digest,
            "type": summary.kind,
            "mediaType": summary.media_type,
            "artifactType": summary.artifact_type,
            "size": summary.total_size,
            "pushedAt": summary.pushed_at,
            "pushedBy": summary.pushed_by,
            "tags": tag_names,
            "platform": own,
            "subject": manifest.subject.digest if manifest.subject else None,
            "annotations": manifest.annotations,
        }
        if manifest.is_index:
            detail["manifests"] = [
                {"digest": c[0], "type": c[4], "platform": _platform(c[1], c[2], c[3])} for c in children
            ]
        else:
            detail["config"] = await self._config(manifest.config.digest if manifest.config else None)
            detail["layers"] = self._layers(manifest, detail["config"])
        if summary.kind == APPLICATION:
            detail["bundle"] = await self._bundle(rid, repository, manifest)
        return detail

    async def _config(self, digest: str | None) -> dict[str, Any] | None:
        if digest is None:
            return None
        data = await self.blobs.read_small(digest, _MAX_CONFIG)
        if data is None:
            return None
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None
        return parsed if isinstance(parsed, dict) else None

    @staticmethod
    def _layers(manifest: Any, config: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Layers with the command that created each, from the config's history (empty layers skipped)."""
        history = [
            h for h in (config or {}).get("history", []) if isinstance(h, dict) and not h.get("empty_layer")
        ]
        out = []
        for i, layer in enumerate(manifest.layers):
            created_by = history[i].get("created_by") if i < len(history) else None
            out.append(
                {
                    "digest": layer.digest,
                    "mediaType": layer.media_type,
                    "size": layer.size,
                    "createdBy": created_by,
                }
            )
        return out

    async def _bundle(self, rid: int, repository: str, manifest: Any) -> dict[str, Any]:
        index = cnab.parse_bundle_index(manifest)
        async with self.db.read() as conn:
            config_stored = await q.manifest_by_digest(conn, repository, index.config.digest)
        if config_stored is None:
            raise NotFound(f"the bundle config manifest {index.config.digest} is missing")
        blob = cnab.config_blob_descriptor(parse_manifest(config_stored.content, config_stored.media_type))
        data = await self.blobs.read_small(blob.digest, _MAX_CONFIG)
        if data is None:
            raise NotFound(f"the bundle config blob {blob.digest} is missing")
        bundle = cnab.build_bundle(index, data)
        digests = [i.digest for i in (*bundle.invocation_images, *bundle.components) if i.digest]
        async with self.db.read() as conn:
            tags = await q.tags_by_digest(conn, rid, digests)

        def image(img: cnab.BundleImage) -> dict[str, Any]:
            return {
                "name": img.name,
                "reference": img.original_reference,
                "digest": img.digest,
                "mediaType": img.media_type,
                "tags": tags.get(img.digest or "", []),
                "platforms": [p.as_dict() for p in img.platforms],
            }

        return {
            "name": bundle.name,
            "version": bundle.version,
            "description": bundle.description,
            "maintainers": [{"name": m.name, "email": m.email, "url": m.url} for m in bundle.maintainers],
            "layout": bundle.layout,
            "invocationImages": [image(i) for i in bundle.invocation_images],
            "components": [image(c) for c in bundle.components],
            "parameters": [
                {
                    "name": p.name,
                    "type": p.type,
                    "default": p.default,
                    "required": p.required,
                    "description": p.description,
                }
                for p in bundle.parameters
            ],
            "credentials": [
                {
                    "name": c.name,
                    "env": c.env,
                    "path": c.path,
                    "description": c.description,
                    "required": c.required,
                }
                for c in bundle.credentials
            ],
        }
