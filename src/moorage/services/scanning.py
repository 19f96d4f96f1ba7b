"""Scans of what a repository holds: per-layer inventories, matching, findings, overrides, SBOMs.

An image is scanned layer by layer: each layer blob is streamed from the blob store once and its
package inventory kept per layer digest (``layer_inventories``), so the same layer in another
image, and every re-match after a vulnerability database update, never reads it again. A
multi-arch image is the scans of its platforms; an application the scans of its invocation image
and of every component image (and their platforms): it is ``pending`` until all are scanned.

The queue is the ``scans`` table itself: ``pending`` rows are claimed by a conditional UPDATE
(``claim``), so several workers and processes may share it; see ``moorage.jobs.scans``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component as CdxComponent
from cyclonedx.model.component import ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import content as cq
from moorage.db import scans as q
from moorage.db.engine import Database
from moorage.oci import cnab
from moorage.oci.classify import APPLICATION, IMAGE, INVOCATION, MULTI_ARCH
from moorage.oci.manifest import parse_manifest
from moorage.scanner import matching
from moorage.scanner.inventory import Component, LayerInventory, inventory_layer, merge_layers
from moorage.scanner.layers import LayerError, Limits
from moorage.scanner.severity import BUCKETS, bucket
from moorage.services import events as ev
from moorage.services.access import AccessService, Level, Principal
from moorage.services.clock import Clock
from moorage.services.errors import Forbidden, InvalidInput, NotFound
from moorage.services.events import EventLog
from moorage.services.jobs import JobContext, JobService
from moorage.services.vulndb import VulnDbService
from moorage.storage.base import BlobStore

__all__ = ["NOT_SCANNED", "SEVERITIES", "ScanService", "aggregate_status"]

log = logging.getLogger("moorage.scanning")

#: The background job that re-matches every scan (``request_rescan_all``).
RESCAN_JOB = "scan.rescan_all"

NOT_SCANNED = "not_scanned"
#: The buckets every summary counts: ``unknown`` holds findings whose record carries no rating,
#: so the counts always add up to the visible findings.
SEVERITIES = BUCKETS
#: Kinds whose manifests hold layers to scan, and kinds whose push starts a scan.
_SCANNABLE = frozenset({IMAGE, INVOCATION})
SCAN_ON_PUSH_KINDS = frozenset({IMAGE, MULTI_ARCH, APPLICATION, INVOCATION})
_MAX_DEPTH = 4
#: Layers of one image inventoried at once (each in its own thread, holding one chunk of the blob).
_LAYERS_AT_ONCE = 2
_MAX_BUNDLE_CONFIG = 4 << 20


class _BlobReader(io.RawIOBase):
    """A blocking, forward-only file over the blob store's async stream, for a worker thread.

    Each ``read`` waits for the next chunk from the event loop; nothing is held but one chunk.
    """

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._buffer = b""
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._buffer:
            if self._done:
                return 0
            chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
            if chunk is None:
                self._done = True
                return 0
            self._buffer = chunk
        n = min(len(view), len(self._buffer))
        view[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _upload_suffix(data: bytes) -> str | None:
    """What an uploaded OSV body is, from its first bytes: the name ``osv.read_records`` reads it by."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip (an empty one holds no record: refused later)
        return ".zip"
    if data[:2] == b"\x1f\x8b":
        return ".tar.gz"
    if data[:3] == b"BZh":
        return ".tar.bz2"
    if data[:6] == b"\xfd7zXZ\x00":
        return ".tar.xz"
    if data[257:262] == b"ustar":
        return ".tar"
    if data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{":
        return ".json"
    return None


def aggregate_status(statuses: list[str]) -> str:
    """One status for several scans: completed only when all are; pending while any is waiting."""
    if not statuses or all(s == NOT_SCANNED for s in statuses):
        return NOT_SCANNED
    if all(s == q.COMPLETED for s in statuses):
        return q.COMPLETED
    if any(s == q.SCANNING for s in statuses):
        return q.SCANNING
    if any(s in (q.PENDING, NOT_SCANNED) for s in statuses):
        return q.PENDING
    return q.FAILED


def _to_match(c: Component) -> matching.Component:
    return matching.Component(
        name=c.name,
        version=c.version,
        ecosystem=c.ecosystem,
        source_name=c.source_name,
        source_version=c.source_version,
        purl=c.purl,
        layer=c.layer,
        path=c.path,
    )


def _finding_row(f: matching.Finding) -> dict[str, Any]:
    return {
        "vuln_id": f.id,
        "aliases": json.dumps(list(f.aliases)),
        "severity": bucket(f.severity),
        "score": f.score,
        "package": f.package,
        "ecosystem": f.ecosystem,
        "version": f.version,
        "fixed_versions": json.dumps(list(f.fixed_versions)),
        "layer": f.component.layer,
        "path": f.component.path,
        "summary": f.summary,
        "purl": f.component.purl,
    }


def _finding_out(f: q.FindingRow) -> dict[str, Any]:
    return {
        "id": f.vuln_id,
        "aliases": f.aliases,
        "severity": bucket(f.severity),
        "score": f.score,
        "package": f.package,
        "ecosystem": f.ecosystem,
        "version": f.version,
        "fixedVersions": f.fixed_versions,
        "layer": f.layer,
        "path": f.path,
        "summary": f.summary,
    }


def _hidden_by(f: q.FindingRow, overrides: list[q.OverrideRow]) -> q.OverrideRow | None:
    ids = {f.vuln_id, *f.aliases}
    for o in overrides:
        if o.vuln_id in ids and o.package in ("*", f.package):
            return o
    return None


@dataclass
class _Tree:
    """The image manifests a manifest's scan consists of, with their scans."""

    images: list[str]
    scans: dict[str, q.ScanRow]
    findings: dict[int, list[q.FindingRow]]
    overrides: list[q.OverrideRow]

    def status_of(self, digests: list[str]) -> str:
        return aggregate_status([self.scans[d].status if d in self.scans else NOT_SCANNED for d in digests])

    def split(
        self, digests: list[str]
    ) -> tuple[list[q.FindingRow], list[tuple[q.FindingRow, q.OverrideRow]]]:
        visible: dict[tuple[str, str, str, str], q.FindingRow] = {}
        hidden: dict[tuple[str, str, str, str], tuple[q.FindingRow, q.OverrideRow]] = {}
        for d in dict.fromkeys(digests):
            scan = self.scans.get(d)
            if scan is None or scan.status != q.COMPLETED:
                continue
            for f in self.findings.get(scan.id, []):
                key = (f.vuln_id, f.ecosystem, f.package, f.version)
                override = _hidden_by(f, self.overrides)
                if override is None:
                    visible.setdefault(key, f)
                else:
                    hidden.setdefault(key, (f, override))
        return list(visible.values()), list(hidden.values())

    def summary(self, digests: list[str]) -> dict[str, Any]:
        visible, _ = self.split(digests)
        out: dict[str, Any] = {"status": self.status_of(digests)}
        for severity in SEVERITIES:
            out[severity] = sum(1 for f in visible if bucket(f.severity) == severity)
        return out


@dataclass
class ScanService:
    db: Database
    store: BlobStore
    vulndb: VulnDbService
    access: AccessService
    clock: Clock
    limits: Limits
    concurrency: int = 2
    scan_on_push_default: bool = True
    #: set whenever work is queued in this process, so the worker need not wait for its next poll
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: where scan outcomes are announced (SCAN_COMPLETED / SCAN_FAILED); set by the container
    events: EventLog | None = None
    #: where "rescan all" runs (``register``); set by the container
    jobs: JobService | None = None

    # -- access -------------------------------------------------------------------------
    async def check(self, actor: Principal | None, repository: str, level: Level) -> None:
        access = await self.access.repository(actor, repository)
        if not access.exists or access.level < Level.READ_ONLY:
            raise NotFound(f"repository {repository!r} does not exist")
        if access.level < level:
            raise Forbidden(f"this needs {level.name.lower().replace('_', '-')} access to {repository!r}")

    async def _repo(self, repository: str) -> int:
        async with self.db.read() as conn:
            rid = await cq.repository_id(conn, repository)
        if rid is None:
            raise NotFound(f"repository {repository!r} does not exist")
        return rid

    # -- what a manifest's scan consists of --------------------------------------------
    async def _images(self, repository: str, digest: str, depth: int = 0) -> list[str]:
        """The image manifests scanned for ``digest``: itself, its platforms, an application's images."""
        async with self.db.read() as conn:
            rid = await cq.repository_id(conn, repository)
            summary = await cq.manifest_summary(conn, rid, digest) if rid is not None else None
            stored = await cq.manifest_by_digest(conn, repository, digest) if summary else None
        if summary is None or stored is None:
            raise NotFound(f"manifest {digest} is not in repository {repository!r}")
        if summary.kind in _SCANNABLE:
            return [digest]
        if summary.kind not in (MULTI_ARCH, APPLICATION) or depth >= _MAX_DEPTH:
            return []
        manifest = parse_manifest(stored.content, stored.media_type)
        if summary.kind == APPLICATION:
            index = cnab.parse_bundle_index(manifest)
            children = [index.invocation.digest, *(d.digest for d in index.components.values())]
        else:
            children = [d.digest for d in manifest.manifests]
        out: list[str] = []
        for child in children:
            try:
                out.extend(await self._images(repository, child, depth + 1))
            except NotFound:
                continue
        return list(dict.fromkeys(out))

    async def _tree(self, repository: str, digests: list[str]) -> _Tree:
        async with self.db.read() as conn:
            rid = await cq.repository_id(conn, repository)
            assert rid is not None
            scans = await q.scans_of(conn, rid, digests)
            findings = await q.findings_of(conn, [s.id for s in scans.values()])
            overrides = await q.overrides_of(conn, rid)
        return _Tree(digests, scans, findings, overrides)

    # -- queueing -----------------------------------------------------------------------
    async def enqueue(self, repository: str, digest: str, force: bool = False) -> list[str]:
        """Queue the scans of a manifest (every image it consists of); idempotent. Returns those images."""
        images = await self._images(repository, digest)
        now = self.clock()
        async with self.db.write() as conn:
            rid = await cq.repository_id(conn, repository)
            assert rid is not None
            for image in images:
                await q.enqueue(conn, rid, image, now, force)
        self.wake.set()
        return images

    async def wants_push(self, conn: AsyncConnection, repository_id: int, kind: str) -> bool:
        """Scan on push (asked in the push's transaction): for the kinds worth scanning, when the
        repository (or the default) says so."""
        if kind not in SCAN_ON_PUSH_KINDS:
            return False
        own = await q.scan_on_push(conn, repository_id)
        return self.scan_on_push_default if own is None else own

    async def take_push(self, repository: str, digest: str) -> None:
        """Queue the scan of a pushed manifest ``wants_push`` wanted."""
        try:
            await self.enqueue(repository, digest)
        except Exception:  # a push never fails because its scan could not be queued
            log.exception("could not queue the scan of %s@%s", repository, digest)

    async def request_scan(self, actor: Principal | None, repository: str, digest: str) -> dict[str, Any]:
        """A manual scan (read-write and up): queue it again, even when already scanned."""
        await self.check(actor, repository, Level.READ_WRITE)
        await self.enqueue(repository, digest, force=True)
        return await self.summary(repository, digest)

    # -- working the queue --------------------------------------------------------------
    async def claim_next(self) -> int | None:
        """Claim one pending scan for this worker, or ``None`` when the queue is empty."""
        for _ in range(5):
            async with self.db.read() as conn:
                ids = await q.pending_ids(conn, 10)
            if not ids:
                return None
            for scan_id in ids:
                async with self.db.write() as conn:
                    if await q.claim(conn, scan_id, self.clock()):
                        return scan_id
        return None

    async def requeue_stale(self, started_before: Any) -> int:
        async with self.db.write() as conn:
            return await q.requeue_stale(conn, started_before)

    async def run_claimed(self, scan_id: int) -> None:
        """Scan a claimed row to completed or failed; never raises for a bad image."""
        async with self.db.read() as conn:
            row = await q.scan_by_id(conn, scan_id)
        if row is None:
            return
        try:
            findings = await self._scan_image(row.repository, row.digest)
        except (LayerError, InvalidInput, NotFound, FileNotFoundError) as exc:
            await self._finish(scan_id, q.FAILED, str(exc), None, [])
            return
        except Exception as exc:
            log.exception("scan of %s@%s failed", row.repository, row.digest)
            await self._finish(scan_id, q.FAILED, f"internal error: {type(exc).__name__}: {exc}", None, [])
            return
        version, rows = findings
        await self._finish(scan_id, q.COMPLETED, None, version, rows)

    async def work_pending(self) -> int:
        """Scan everything pending, one at a time (tests, the CLI); returns how many were scanned."""
        done = 0
        while (scan_id := await self.claim_next()) is not None:
            await self.run_claimed(scan_id)
            done += 1
        return done

    async def scan(self, repository: str, digest: str) -> dict[str, Any]:
        """Scan a manifest now (queue it, then work the queue); returns its summary."""
        await self.enqueue(repository, digest, force=True)
        await self.work_pending()
        return await self.summary(repository, digest)

    async def _finish(
        self, scan_id: int, status: str, reason: str | None, version: str | None, rows: list[dict[str, Any]]
    ) -> None:
        async with self.db.write() as conn:
            await q.finish(conn, scan_id, status, reason, version, rows, self.clock())
            if self.events is not None:
                await self._emit_finished(conn, scan_id, status, reason, version, rows)

    async def _emit_finished(
        self,
        conn: AsyncConnection,
        scan_id: int,
        status: str,
        reason: str | None,
        version: str | None,
        rows: list[dict[str, Any]],
    ) -> None:
        """``SCAN_COMPLETED`` / ``SCAN_FAILED``, in the transaction that records the outcome."""
        assert self.events is not None
        row = await q.scan_by_id(conn, scan_id)
        if row is None:
            return
        counts = dict.fromkeys(("critical", "high", "medium", "low", "unknown"), 0)
        for finding in rows:
            severity = finding.get("severity") or "unknown"
            counts[severity if severity in counts else "unknown"] += 1
        await self.events.emit(
            conn,
            ev.SCAN_COMPLETED if status == q.COMPLETED else ev.SCAN_FAILED,
            repository=row.repository,
            digest=row.digest,
            contents={
                "status": status,
                "reason": reason,
                "vulndbVersion": version,
                "scanSummary": counts,
                "finishedAt": self.clock().isoformat(),
            },
        )

    # -- one image ----------------------------------------------------------------------
    async def _layers(self, repository: str, digest: str) -> list[str]:
        async with self.db.read() as conn:
            stored = await cq.manifest_by_digest(conn, repository, digest)
        if stored is None:
            raise NotFound(f"manifest {digest} is not in repository {repository!r}")
        manifest = parse_manifest(stored.content, stored.media_type)
        return [d.digest for d in manifest.layers]

    async def _inventory(self, layer: str) -> LayerInventory:
        async with self.db.read() as conn:
            stored = await q.layer_inventories_of(conn, [layer])
        if layer in stored:
            return LayerInventory.from_json(stored[layer])
        if await self.store.stat(layer) is None:
            raise NotFound(f"layer {layer}: the blob is missing from storage")
        loop = asyncio.get_running_loop()
        chunks = self.store.read(layer)
        try:
            reader = io.BufferedReader(_BlobReader(chunks, loop), 1 << 16)
            try:
                inventory = await asyncio.to_thread(inventory_layer, reader, layer, self.limits)
            except LayerError as exc:
                raise LayerError(f"layer {layer}: {exc}") from exc
            except FileNotFoundError:
                raise NotFound(f"layer {layer}: the blob is missing from storage") from None
        finally:
            closer: Callable[[], Any] | None = getattr(chunks, "aclose", None)
            if closer is not None:
                await closer()
        async with self.db.write() as conn:
            await q.store_layer_inventory(conn, layer, inventory.to_json(), self.clock())
        return inventory

    async def _components(self, repository: str, digest: str) -> list[Component]:
        """The image's components; layers not inventoried yet are read ``_LAYERS_AT_ONCE`` at a time
        (decompression releases the GIL: two layers use two cores). A failure is the first failing
        layer's, in layer order, once every layer read has ended."""
        layers = await self._layers(repository, digest)
        unique = list(dict.fromkeys(layers))
        gate = asyncio.Semaphore(_LAYERS_AT_ONCE)

        async def one(layer: str) -> LayerInventory:
            async with gate:
                return await self._inventory(layer)

        results = await asyncio.gather(*(one(layer) for layer in unique), return_exceptions=True)
        by_digest: dict[str, LayerInventory] = {}
        for layer, result in zip(unique, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            by_digest[layer] = result
        return merge_layers(by_digest[layer] for layer in layers).components

    async def _scan_image(self, repository: str, digest: str) -> tuple[str | None, list[dict[str, Any]]]:
        components = await self._components(repository, digest)
        version = await self.vulndb.version()
        found = await self.vulndb.match([_to_match(c) for c in components])
        return version, [_finding_row(f) for f in found]

    # -- after a vulnerability database update ------------------------------------------
    async def queue_status(self, actor: Principal | None) -> dict[str, int]:
        """Scans per status (pending, scanning, completed, failed); administrators."""
        if actor is None or not actor.is_admin:
            raise Forbidden("only administrators may read the scan queue")
        async with self.db.read() as conn:
            return await q.count_by_status(conn)

    async def request_rescan_all(self, actor: Principal | None) -> int:
        """Queue a re-match of every scan as a background job (administrators); returns the job id.

        While one is waiting, asking again returns the same job.
        """
        if actor is None or not actor.is_admin:
            raise Forbidden("only administrators may rescan everything")
        if self.jobs is None:
            raise RuntimeError("no job queue is wired to the scan service")
        waiting, _ = await self.jobs.jobs(kinds=(RESCAN_JOB,), statuses=("pending",), limit=1)
        if waiting:
            return waiting[0].id
        job_id = await self.jobs.enqueue(RESCAN_JOB, {"requestedBy": actor.username})
        assert job_id is not None
        return job_id

    async def _rescan_job(self, ctx: JobContext) -> dict[str, Any]:
        await ctx.log("re-matching every completed scan against the vulnerability database")
        rematched = await self.rescan_all()
        await ctx.log(f"re-matched {rematched} scans")
        return {"rematched": rematched}

    def register(self, jobs: JobService) -> None:
        """Run rescans as background jobs of ``jobs``."""
        self.jobs = jobs
        jobs.handle(RESCAN_JOB, self._rescan_job)

    async def rescan_all(self) -> int:
        """Re-match every completed scan against the database as it is now, from stored inventories only.

        A scan whose layer inventories are not all stored is queued again instead. Returns the re-matched.
        """
        async with self.db.read() as conn:
            rows = await q.completed_scans(conn)
        version = await self.vulndb.version()
        rematched = 0
        for row in rows:
            try:
                layers = await self._layers(row.repository, row.digest)
            except NotFound:  # the manifest was deleted since; its scan is no longer shown
                continue
            async with self.db.read() as conn:
                stored = await q.layer_inventories_of(conn, layers)
            if any(layer not in stored for layer in layers):
                await self.enqueue(row.repository, row.digest, force=True)
                continue
            inventory = merge_layers(LayerInventory.from_json(stored[layer]) for layer in layers)
            found = await self.vulndb.match([_to_match(c) for c in inventory.components])
            await self._finish(row.id, q.COMPLETED, None, version, [_finding_row(f) for f in found])
            rematched += 1
        return rematched

    async def import_vulndb(self, actor: Principal | None, data: bytes) -> dict[str, Any]:
        """Import OSV records (a .zip, .tar.gz or .json body; administrators), then re-match every scan."""
        if actor is None or not actor.is_admin:
            raise Forbidden("only administrators may import vulnerability data")
        suffix = _upload_suffix(data)
        if suffix is None:
            raise InvalidInput(
                "the body is not a .zip, .tar.gz or .json of OSV records "
                f"(it starts with {bytes(data[:8])!r}); nothing was imported",
                field="body",
            )
        with tempfile.TemporaryDirectory(prefix="moorage-vulndb-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            await asyncio.to_thread(path.write_bytes, data)
            try:
                report = await self.vulndb.import_path(path)
            except InvalidInput as exc:
                raise InvalidInput(exc.message, field="body") from None
        rematched = await self.rescan_all()
        return {
            "version": report.version,
            "importedAt": report.imported_at,
            **report.counts(),
            "invalidFiles": [str(i) for i in report.invalid[:100]],
            "rematched": rematched,
        }

    # -- reading results ----------------------------------------------------------------
    async def summary(self, repository: str, digest: str) -> dict[str, Any]:
        """``{status, critical, high, medium, low, unknown}``; an index's aggregates its images."""
        images = await self._images(repository, digest)
        return (await self._tree(repository, images)).summary(images)

    async def summaries(self, repository: str, digests: list[str]) -> dict[str, dict[str, Any]]:
        out = {}
        for digest in dict.fromkeys(digests):
            try:
                out[digest] = await self.summary(repository, digest)
            except NotFound:
                continue
        return out

    async def vulnerabilities(self, actor: Principal | None, repository: str, digest: str) -> dict[str, Any]:
        await self.check(actor, repository, Level.READ_ONLY)
        images = await self._images(repository, digest)
        tree = await self._tree(repository, images)
        visible, hidden = tree.split(images)
        summary = tree.summary(images)
        out: dict[str, Any] = {
            "status": summary.pop("status"),
            "summary": summary,
            "findings": [_finding_out(f) for f in visible],
            "hidden": [
                {
                    **_finding_out(f),
                    "override": {"package": o.package, "note": o.note, "createdBy": o.created_by},
                }
                for f, o in hidden
            ],
        }
        async with self.db.read() as conn:
            rid = await cq.repository_id(conn, repository)
            assert rid is not None
            own = await cq.manifest_summary(conn, rid, digest)
            stored = await cq.manifest_by_digest(conn, repository, digest)
        assert own is not None
        assert stored is not None
        if own.kind == MULTI_ARCH:
            async with self.db.read() as conn:
                children = (await cq.child_platforms(conn, rid, [own.id])).get(own.id, [])
            platforms = []
            for child in children:
                child_images = [d for d in await self._images(repository, child[0])] if child[0] else []
                if not child_images:
                    continue
                s = tree.summary(child_images)
                status = s.pop("status")
                platforms.append(
                    {
                        "os": child[1],
                        "architecture": child[2],
                        "variant": child[3],
                        "digest": child[0],
                        "status": status,
                        "summary": s,
                    }
                )
            out["platforms"] = platforms
        if own.kind == APPLICATION:
            index = cnab.parse_bundle_index(parse_manifest(stored.content, stored.media_type))
            entries = [("invocation", index.invocation), *index.components.items()]
            references = await self._bundle_references(repository, index)
            components = []
            for name, desc in entries:
                child_images = await self._images(repository, desc.digest)
                s = tree.summary(child_images)
                status = s.pop("status")
                components.append(
                    {
                        "name": name,
                        "reference": references.get(desc.digest),
                        "digest": desc.digest,
                        "status": status,
                        "summary": s,
                    }
                )
            out["components"] = components
        return out

    async def _bundle_references(self, repository: str, index: cnab.BundleIndex) -> dict[str, str | None]:
        """Where each bundled image came from (``image`` / ``original_name`` in the bundle), by digest."""
        async with self.db.read() as conn:
            config = await cq.manifest_by_digest(conn, repository, index.config.digest)
        if config is None:
            return {}
        try:
            blob = cnab.config_blob_descriptor(parse_manifest(config.content, config.media_type))
            if blob.size > _MAX_BUNDLE_CONFIG:
                return {}
            data = b"".join([chunk async for chunk in self.store.read(blob.digest)])
            bundle = cnab.build_bundle(index, data)
        except Exception:  # the bundle was checked on push; a missing blob only loses the references
            return {}
        return {
            i.digest: i.original_reference
            for i in (*bundle.invocation_images, *bundle.components)
            if i.digest
        }

    # -- overrides ----------------------------------------------------------------------
    async def add_override(
        self, actor: Principal | None, repository: str, vuln_id: str, package: str, note: str | None
    ) -> None:
        await self.check(actor, repository, Level.ADMIN)
        rid = await self._repo(repository)
        async with self.db.write() as conn:
            await q.add_override(
                conn, rid, vuln_id, package or "*", note, actor.username if actor else None, self.clock()
            )

    async def remove_override(
        self, actor: Principal | None, repository: str, vuln_id: str, package: str
    ) -> None:
        await self.check(actor, repository, Level.ADMIN)
        rid = await self._repo(repository)
        async with self.db.write() as conn:
            if not await q.remove_override(conn, rid, vuln_id, package or "*"):
                raise NotFound(f"no override of {vuln_id} for {package or '*'} in {repository!r}")

    # -- SBOM ---------------------------------------------------------------------------
    async def sbom(self, actor: Principal | None, repository: str, digest: str) -> dict[str, Any]:
        """CycloneDX 1.5 JSON of the components of every image the manifest consists of."""
        await self.check(actor, repository, Level.READ_ONLY)
        images = await self._images(repository, digest)
        components: list[Component] = []
        for image in images:
            layers = await self._layers(repository, image)
            async with self.db.read() as conn:
                stored = await q.layer_inventories_of(conn, layers)
            if any(layer not in stored for layer in layers):
                raise NotFound(f"manifest {digest} has not been scanned yet: scan it first")
            components.extend(merge_layers(LayerInventory.from_json(stored[x]) for x in layers).components)
        bom = Bom()
        root = CdxComponent(
            name=repository, version=digest, type=ComponentType.CONTAINER, bom_ref=f"{repository}@{digest}"
        )
        bom.metadata.component = root
        seen: set[tuple[str, str]] = set()
        for c in components:
            if (c.purl, c.path) in seen:
                continue
            seen.add((c.purl, c.path))
            bom.components.add(
                CdxComponent(
                    name=c.name,
                    version=c.version,
                    type=ComponentType.LIBRARY,
                    purl=PackageURL.from_string(c.purl),
                    bom_ref=f"{c.purl}#{len(seen)}",
                    properties=[
                        Property(name="moorage:layer", value=c.layer),
                        Property(name="moorage:path", value=c.path),
                        Property(name="moorage:ecosystem", value=c.ecosystem),
                    ],
                )
            )
        bom.register_dependency(root, list(bom.components))
        result: dict[str, Any] = json.loads(JsonV1Dot5(bom).output_as_string())
        return result
