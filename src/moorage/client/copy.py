"""Copy an artifact, with everything it references, from one registry to another.

``copy_artifact`` works between two ``Endpoint``s: ``RemoteEndpoint`` speaks the OCI
Distribution API through ``RegistryClient``; Moorage's mirroring service supplies one over
its own storage for the local side. An image is its blobs (config, layers) then its
manifest; a multi-arch index or an application (CNAB index) is each child, recursively and
children first, then the index, so the destination never holds a manifest whose references
are missing and every manifest keeps its digest (the bytes are copied as they are).

Nothing is sent twice: a child manifest the destination holds already (asked by digest) is
taken as complete, and a blob is checked with ``HEAD`` and then mounted from a repository of
the destination that may hold it before it is uploaded. Blobs stream from source to
destination without being held whole in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from moorage.client.registry import ClientError, RegistryClient
from moorage.oci.manifest import parse_manifest

#: Deepest nesting of indexes followed (an application of multi-arch images is 2).
MAX_DEPTH = 8

Log = Callable[[str], Awaitable[None]]


class Endpoint(Protocol):
    """One side of a copy: a registry (or Moorage's own storage) and how to reach it."""

    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """``(content, media type, digest)``; the content must match the digest."""
        ...

    async def manifest_digest(self, repo: str, reference: str) -> str | None:
        """What a tag or digest resolves to, ``None`` when absent."""
        ...

    def read_blob(self, repo: str, digest: str) -> AsyncIterator[bytes]:
        """Stream a blob, verified against its digest."""
        ...

    async def has_blob(self, repo: str, digest: str) -> bool: ...

    async def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Link a blob of ``source`` (same registry) into ``repo``; ``False`` when not possible."""
        ...

    async def put_blob(self, repo: str, digest: str, chunks: AsyncIterator[bytes]) -> None: ...

    async def put_manifest(self, repo: str, reference: str, content: bytes, media_type: str) -> str:
        """Store a manifest under a tag or its digest; returns the digest."""
        ...


@dataclass
class RemoteEndpoint:
    """A registry reached over HTTP(S) with Moorage's OCI client."""

    client: RegistryClient

    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        return await self.client.get_manifest(repo, reference)

    async def manifest_digest(self, repo: str, reference: str) -> str | None:
        return await self.client.manifest_digest(repo, reference)

    def read_blob(self, repo: str, digest: str) -> AsyncIterator[bytes]:
        return self.client.pull_blob(repo, digest)

    async def has_blob(self, repo: str, digest: str) -> bool:
        return await self.client.blob_exists(repo, digest)

    async def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        try:
            return await self.client.mount_blob(repo, digest, source)
        except ClientError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 401:
                return False  # no mounting there (or not from that repository): upload instead
            raise

    async def put_blob(self, repo: str, digest: str, chunks: AsyncIterator[bytes]) -> None:
        await self.client.push_blob_stream(repo, digest, chunks)

    async def put_manifest(self, repo: str, reference: str, content: bytes, media_type: str) -> str:
        return await self.client.put_manifest(repo, reference, content, media_type)


@dataclass
class CopyReport:
    """What a copy did: the manifests and blobs it sent, and those the destination had."""

    digest: str = ""
    manifests_copied: int = 0
    manifests_present: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    copied: list[str] = field(default_factory=list)


async def copy_artifact(
    source: Endpoint,
    source_repo: str,
    reference: str,
    destination: Endpoint,
    destination_repo: str,
    destination_tag: str | None,
    *,
    mount_from: Sequence[str] = (),
    log: Log | None = None,
) -> CopyReport:
    """Copy ``source_repo:reference`` (a tag or digest) to ``destination_repo`` and tag it
    ``destination_tag`` there (``None``: by digest only). Raises what the endpoints raise
    (``ClientError`` for a remote, the registry's errors for Moorage's own storage)."""
    report = CopyReport()
    content, media_type, digest = await source.get_manifest(source_repo, reference)
    report.digest = digest
    await _copy_tree(
        source,
        source_repo,
        destination,
        destination_repo,
        content,
        media_type,
        digest,
        mount_from,
        log,
        report,
        0,
    )
    await destination.put_manifest(destination_repo, destination_tag or digest, content, media_type)
    report.manifests_copied += 1
    report.copied.append(digest)
    if log is not None:
        where = f"{destination_repo}:{destination_tag}" if destination_tag else f"{destination_repo}@{digest}"
        await log(f"put {media_type} {digest} as {where}")
    return report


async def _copy_tree(
    source: Endpoint,
    source_repo: str,
    destination: Endpoint,
    destination_repo: str,
    content: bytes,
    media_type: str,
    digest: str,
    mount_from: Sequence[str],
    log: Log | None,
    report: CopyReport,
    depth: int,
) -> None:
    """Everything ``content`` references, children first; not the manifest itself."""
    if depth > MAX_DEPTH:
        raise ClientError(f"{digest}: indexes nested deeper than {MAX_DEPTH} levels")
    manifest = parse_manifest(content, media_type)
    for child in manifest.manifests:
        if await destination.manifest_digest(destination_repo, child.digest) is not None:
            report.manifests_present += 1
            continue
        child_content, child_type, child_digest = await source.get_manifest(source_repo, child.digest)
        await _copy_tree(
            source,
            source_repo,
            destination,
            destination_repo,
            child_content,
            child_type,
            child_digest,
            mount_from,
            log,
            report,
            depth + 1,
        )
        await destination.put_manifest(destination_repo, child_digest, child_content, child_type)
        report.manifests_copied += 1
        report.copied.append(child_digest)
        if log is not None:
            await log(f"put {child_type} {child_digest}")
    for blob in dict.fromkeys(manifest.blob_digests()):
        await _copy_blob(source, source_repo, destination, destination_repo, blob, mount_from, log, report)


async def _copy_blob(
    source: Endpoint,
    source_repo: str,
    destination: Endpoint,
    destination_repo: str,
    digest: str,
    mount_from: Sequence[str],
    log: Log | None,
    report: CopyReport,
) -> None:
    if await destination.has_blob(destination_repo, digest):
        report.blobs_present += 1
        return
    for other in mount_from:
        if other != destination_repo and await destination.mount_blob(destination_repo, digest, other):
            report.blobs_mounted += 1
            if log is not None:
                await log(f"mounted blob {digest} from {other}")
            return
    size = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal size
        async for chunk in source.read_blob(source_repo, digest):
            size += len(chunk)
            yield chunk

    await destination.put_blob(destination_repo, digest, counted())
    report.blobs_copied += 1
    report.bytes_copied += size
    if log is not None:
        await log(f"copied blob {digest} ({size} bytes)")
