"""Copying an image (a manifest, its children, its blobs) into another repository, by digest.

Within one registry every blob is cross-repository mounted (``POST …/blobs/uploads/?mount=&from=``),
which copies nothing; where the registry declines (no pull right on the source, or another
registry altogether) the blob is streamed through a temporary file. Manifests are pushed by
digest only, never tagged: the bundle index is what keeps them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from moorage.client.progress import Reporter
from moorage.client.registry import ClientError, RegistryClient
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import parse_manifest


async def copy_blob(
    source: RegistryClient,
    source_repo: str,
    target: RegistryClient,
    target_repo: str,
    digest: str,
    size: int,
    reporter: Reporter,
    label: str,
) -> None:
    if source is target and source_repo == target_repo:
        return
    task = reporter.task(f"{label} {digest[7:19]}", size)
    try:
        if source is target and await target.mount_blob(target_repo, digest, source_repo):
            task.advance(size)
            return
        if await target.blob_exists(target_repo, digest):
            task.advance(size)
            return
        with tempfile.TemporaryDirectory(prefix="moorage-blob-") as tmp:
            path = Path(tmp) / "blob"
            with path.open("wb") as fh:
                async for chunk in source.pull_blob(source_repo, digest):
                    fh.write(chunk)
            await target.push_blob(target_repo, digest, path, progress=task.advance)
    finally:
        task.finish()


async def copy_manifest(
    source: RegistryClient,
    source_repo: str,
    target: RegistryClient,
    target_repo: str,
    content: bytes,
    media_type: str,
    digest: str,
    reporter: Reporter,
    label: str,
) -> None:
    """Copy the manifest ``content`` (of ``digest``) and all it references; children of an index first."""
    if source is target and source_repo == target_repo:
        return
    if await target.manifest_digest(target_repo, digest) == digest:
        return  # already there, and with it everything it references
    try:
        manifest = parse_manifest(content, media_type)
    except RegistryError as exc:
        raise ClientError(f"{label}: {exc.message}") from None
    for child in manifest.manifests:
        child_content, child_type, child_digest = await source.get_manifest(source_repo, child.digest)
        await copy_manifest(
            source, source_repo, target, target_repo, child_content, child_type, child_digest, reporter, label
        )
    blobs = [manifest.config] if manifest.config is not None else []
    blobs.extend(manifest.layers)
    seen: set[str] = set()
    for blob in blobs:
        if blob.digest not in seen:
            seen.add(blob.digest)
            await copy_blob(source, source_repo, target, target_repo, blob.digest, blob.size, reporter, label)
    await target.put_manifest(target_repo, digest, content, media_type)
