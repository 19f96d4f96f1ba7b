"""``moorage app inspect`` and ``moorage app pull``: read an application back from a registry.

Both layouts cnab-to-oci has written are read (``moorage.oci.cnab`` does the parsing): today's,
whose config blob is the bundle.json, and docker-app's of 2019, whose bundle is rebuilt from the
index annotations and its config blob.

``pull`` writes into ``--out``:

* ``bundle.json``: the config blob as stored (today's layout) or the rebuilt bundle (2019);
* the application's files from the invocation image's ``/cnab/app/`` (for a docker-app:
  ``NAME.dockerapp/metadata.yml`` …);
* ``invocation-image/``: the invocation image as an OCI image layout (``skopeo copy
  oci:OUT/invocation-image:TAG-invoc …`` reads it), every blob checked against its digest.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from moorage.client.invocation import BUNDLE_PATH, extract_app_files
from moorage.client.progress import Reporter
from moorage.client.references import ImageRef
from moorage.client.registries import Registries
from moorage.client.registry import ClientError, RegistryClient
from moorage.oci import cnab
from moorage.oci import mediatypes as mt
from moorage.oci.classify import config_platform, index_platforms
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import Manifest, Platform, parse_manifest

INVOCATION_LAYOUT = "invocation-image"
REF_NAME = "org.opencontainers.image.ref.name"
_MAX_CONFIG = 4 << 20


class AppPullError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ImageInfo:
    role: str  # "invocation" or "component"
    name: str | None
    original: str | None
    digest: str
    media_type: str
    size: int
    platforms: tuple[Platform, ...]
    tag: str | None = None  # for the invocation image: TAG-invoc when it points at the same digest

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "original": self.original,
            "digest": self.digest,
            "mediaType": self.media_type,
            "size": self.size,
            "platforms": [p.as_dict() for p in self.platforms],
            **({"tag": self.tag} if self.role == cnab.ROLE_INVOCATION else {}),
        }


@dataclass(frozen=True, slots=True)
class AppInfo:
    reference: ImageRef
    digest: str
    media_type: str
    bundle: cnab.Bundle
    config_blob: bytes = field(repr=False)
    invocation: ImageInfo
    components: tuple[ImageInfo, ...]

    def as_json(self) -> dict[str, Any]:
        b = self.bundle
        return {
            "reference": str(self.reference),
            "digest": self.digest,
            "mediaType": self.media_type,
            "layout": b.layout,
            "name": b.name,
            "version": b.version,
            "description": b.description,
            "maintainers": [{"name": m.name, "email": m.email, "url": m.url} for m in b.maintainers],
            "keywords": list(b.keywords),
            "invocationImage": self.invocation.as_json(),
            "components": [c.as_json() for c in self.components],
            "parameters": [p.name for p in b.parameters],
            "credentials": [c.name for c in b.credentials],
        }


@dataclass(frozen=True, slots=True)
class PullResult:
    info: AppInfo
    out: Path
    files: tuple[str, ...]  # written, relative to out
    layout: Path


async def _platforms(client: RegistryClient, repo: str, manifest: Manifest) -> tuple[Platform, ...]:
    if manifest.is_index:
        return index_platforms(manifest)
    if manifest.config is None or manifest.config.size > _MAX_CONFIG:
        return ()
    try:
        config = json.loads(await client.read_blob(repo, manifest.config.digest))
    except (ValueError, ClientError):
        return ()
    platform = config_platform(config) if isinstance(config, dict) else None
    return (platform,) if platform else ()


def _parse(content: bytes, media_type: str, what: str) -> Manifest:
    try:
        return parse_manifest(content, media_type)
    except RegistryError as exc:
        raise AppPullError(f"{what}: {exc.message}") from None


async def inspect_app(registries: Registries, ref: ImageRef) -> AppInfo:
    """Read an application's bundle index, config and images; ``AppPullError`` when it is not one."""
    client = registries.client(ref.host)
    repo = ref.repository
    try:
        try:
            content, media_type, digest = await client.get_manifest(repo, ref.reference)
        except ClientError as exc:
            if exc.status == 404:
                raise AppPullError(f"{ref}: not found") from None
            raise
        index = _parse(content, media_type, str(ref))
        if not cnab.is_bundle_index(index):
            kind = "a multi-arch image" if index.is_index else "an image"
            raise AppPullError(f"{ref} is {kind}, not an application (a CNAB bundle index)")
        try:
            structure = cnab.parse_bundle_index(index)
            config_content, config_type, _ = await client.get_manifest(repo, structure.config.digest)
            config_desc = cnab.config_blob_descriptor(_parse(config_content, config_type, "bundle config"))
            if config_desc.size > _MAX_CONFIG:
                raise AppPullError(f"{ref}: the bundle config is {config_desc.size} bytes, too large")
            config_blob = await client.read_blob(repo, config_desc.digest)
            bundle = cnab.build_bundle(structure, config_blob)
        except RegistryError as exc:
            raise AppPullError(f"{ref}: {exc.message}") from None
        images: list[ImageInfo] = []
        for image in (*bundle.invocation_images, *bundle.components):
            assert image.digest is not None
            assert image.media_type is not None
            child_content, child_type, _ = await client.get_manifest(repo, image.digest)
            child = _parse(child_content, child_type, f"{image.role} {image.name or ''}".strip())
            images.append(
                ImageInfo(
                    image.role,
                    image.name,
                    image.original_reference,
                    image.digest,
                    image.media_type,
                    image.size or len(child_content),
                    await _platforms(client, repo, child),
                )
            )
        invocation = images[0]
        if ref.tag:
            tag = f"{ref.tag}-invoc"
            if await client.manifest_digest(repo, tag) == invocation.digest:
                invocation = replace(invocation, tag=tag)
    except ClientError as exc:
        raise AppPullError(str(exc)) from None
    return AppInfo(ref, digest, index.media_type, bundle, config_blob, invocation, tuple(images[1:]))


def bundle_json(info: AppInfo) -> bytes:
    """The bundle.json to write: the stored one, or (2019 layout) one rebuilt from the index."""
    b = info.bundle
    if b.layout == cnab.LAYOUT_BUNDLE_JSON:
        return info.config_blob
    doc = dict(b.document)
    repo = info.reference.name

    def image(i: ImageInfo) -> dict[str, Any]:
        out: dict[str, Any] = {
            "imageType": "oci" if i.media_type in (mt.OCI_MANIFEST, mt.OCI_INDEX) else "docker",
            "image": f"{repo}@{i.digest}",
            "contentDigest": i.digest,
            "mediaType": i.media_type,
            "size": i.size,
        }
        if i.original:
            out["originalImage"] = i.original
        return out

    rebuilt: dict[str, Any] = {
        "schemaVersion": doc.get("schema_version"),
        "name": b.name,
        "version": b.version,
        "invocationImages": [image(info.invocation)],
        "images": {c.name: image(c) for c in info.components if c.name},
    }
    if b.description:
        rebuilt["description"] = b.description
    if b.keywords:
        rebuilt["keywords"] = list(b.keywords)
    if b.maintainers:
        rebuilt["maintainers"] = [
            {k: v for k, v in (("name", m.name), ("email", m.email), ("url", m.url)) if v}
            for m in b.maintainers
        ]
    for key in ("actions", "parameters", "credentials", "custom"):
        if doc.get(key):
            rebuilt[key] = doc[key]
    return json.dumps(rebuilt, sort_keys=True, separators=(",", ":")).encode()


def _safe_join(root: Path, relative: str) -> Path:
    clean = posixpath.normpath(relative)
    if clean.startswith(("/", "../")) or clean in ("..", "."):
        raise AppPullError(f"the invocation image holds a file outside /cnab/app: {relative!r}")
    return root.joinpath(*clean.split("/"))


class _Layout:
    """An OCI image layout being written; blobs are streamed in and checked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def path(self, digest: str) -> Path:
        algorithm, encoded = digest.split(":", 1)
        (self.root / "blobs" / algorithm).mkdir(parents=True, exist_ok=True)
        return self.root / "blobs" / algorithm / encoded

    def write(self, digest: str, data: bytes) -> None:
        self.path(digest).write_bytes(data)

    async def fetch(
        self, client: RegistryClient, repo: str, digest: str, size: int, reporter: Reporter, label: str
    ) -> Path:
        target = self.path(digest)
        if target.exists() and target.stat().st_size == size:
            return target
        task = reporter.task(f"{label} {digest[7:19]}", size)
        tmp = target.with_name(target.name + ".partial")
        try:
            with tmp.open("wb") as fh:
                async for chunk in client.pull_blob(repo, digest, progress=task.advance):
                    fh.write(chunk)
            os.replace(tmp, target)
        finally:
            task.finish()
            tmp.unlink(missing_ok=True)
        return target

    def tag(self, media_type: str, digest: str, size: int, name: str) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [
                {"mediaType": media_type, "digest": digest, "size": size, "annotations": {REF_NAME: name}}
            ],
        }
        (self.root / "index.json").write_text(json.dumps(index, separators=(",", ":")))


async def pull_app(registries: Registries, ref: ImageRef, out: Path, reporter: Reporter) -> PullResult:
    """Write the bundle, the application's files and the invocation image into ``out``."""
    info = await inspect_app(registries, ref)
    client = registries.client(ref.host)
    repo = ref.repository
    out.mkdir(parents=True, exist_ok=True)
    layout = _Layout(out / INVOCATION_LAYOUT)
    written: list[str] = []
    try:
        inv = info.invocation
        content, media_type, digest = await client.get_manifest(repo, inv.digest)
        layout.write(digest, content)
        manifest = _parse(content, media_type, "invocation image")
        image_manifest = manifest
        if manifest.is_index:  # an invocation image for several platforms: keep them all, read the first
            for child in manifest.manifests:
                child_content, child_type, child_digest = await client.get_manifest(repo, child.digest)
                layout.write(child_digest, child_content)
                child_manifest = _parse(child_content, child_type, "invocation image")
                await _fetch_image(layout, client, repo, child_manifest, reporter)
            first, first_type, _ = await client.get_manifest(repo, manifest.manifests[0].digest)
            image_manifest = _parse(first, first_type, "invocation image")
        else:
            await _fetch_image(layout, client, repo, manifest, reporter)
        layout.tag(media_type, digest, len(content), inv.tag or "invocation")
        files: dict[str, bytes] = {}
        for layer in image_manifest.layers:
            if "tar" not in layer.media_type:
                continue
            try:
                with layout.path(layer.digest).open("rb") as fh:
                    files.update(extract_app_files(fh))
            except (OSError, ValueError, EOFError) as exc:
                raise AppPullError(
                    f"cannot read layer {layer.digest} of the invocation image: {exc}"
                ) from None
    except ClientError as exc:
        raise AppPullError(str(exc)) from None
    files.pop(BUNDLE_PATH.split("/", 2)[2], None)  # the pushed bundle.json is written instead
    for relative, data in sorted(files.items()):
        path = _safe_join(out, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(relative)
    (out / "bundle.json").write_bytes(bundle_json(info))
    written.insert(0, "bundle.json")
    return PullResult(info, out, tuple(written), layout.root)


async def _fetch_image(
    layout: _Layout, client: RegistryClient, repo: str, manifest: Manifest, reporter: Reporter
) -> None:
    blobs = ([manifest.config] if manifest.config else []) + list(manifest.layers)
    for blob in blobs:
        await layout.fetch(client, repo, blob.digest, blob.size, reporter, "invocation")
