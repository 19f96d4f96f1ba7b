"""Online garbage collection: mark, then sweep, while pushes go on (no read-only window).

What is garbage
===============
Per repository, a manifest is **kept** when it is reachable from a root:

* roots: every tagged manifest, and every manifest pushed at or after the *cutoff*
  (``mark start - grace``): a push in progress uploads children and referrers before the
  manifest that ties them together, and a client may push by digest and tag a moment later;
* edges: an index (image index, manifest list, application) keeps the manifests it lists
  (``manifest_children``: platform images, an application's config manifest, invocation
  image and components); a kept manifest keeps its **referrers**, the manifests whose
  ``subject`` it is (signatures, SBOMs, attestations attached with the referrers API), and
  theirs in turn.

Everything else in the repository is garbage: an untagged manifest that no kept index lists
and whose subject is not kept (a referrer of a manifest that is gone, or whose subject was
never pushed, goes once it is older than the grace period).

A **blob link** (``repository_blobs``) is garbage when it was made before the cutoff and no
manifest of its repository references the blob any more. A **blob** (row and file) is garbage
when it was recorded before the cutoff, no repository links it and no manifest references it.
A **file** in the store without a blob row (an upload published by a process that died before
recording it) is garbage when it was last written before the cutoff.

Protocol
========
*Mark* (read-only, several short read transactions) computes candidates: nothing is changed,
and a dry run stops here with what would be freed. *Sweep* deletes candidates with
conditional statements that re-check, in the deleting statement itself, that each row is
still unreferenced and older than the cutoff (``db/gc.py``), so whatever a push did since the
mark wins:

1. set-aside files left by an interrupted sweep are put back when their row exists, else deleted;
2. manifests, in rounds (a child or referrer goes in the round after its parent or subject),
   each round re-checking: untagged, no present manifest lists it, its subject is not present,
   pushed before the cutoff; their blob and child references and scan records go with them;
3. blob links no present manifest of the repository references, linked before the cutoff;
4. blob rows no repository links and no manifest references, recorded before the cutoff:
   in the same transaction their files are *set aside* (renamed out of the store), and only
   once the transaction has committed are they deleted; a failed commit puts them back;
5. orphan files (no row), the same way.

Every sweep transaction first takes the **reference fence** exclusively (``db.gc``:
a PostgreSQL advisory lock; on SQLite every write transaction is exclusive already). Every
write transaction that creates a reference to existing content takes it shared, first: a
manifest push (its blobs must be linked, its children present), a mount, and the
publication of an uploaded blob. So a sweep transaction and a push transaction never
interleave: either the push committed first, and the sweep's re-check sees its tag,
reference or fresh link and keeps the content; or the sweep committed first, and the push
sees the content gone: a manifest push answers ``MANIFEST_BLOB_UNKNOWN``, a mount falls back
to an upload, ``HEAD`` on the blob answers 404 (blob lookups consult the row), and the
client uploads it again. Publishing an upload checks, under the fence, that the blob's file
is (still) in the store, and installs its own bytes when it is not: a blob row is never
recorded without its file. Files are never deleted before their row's deletion commits.

What the grace period buys: a client that checked a blob exists (``HEAD``) and pushes a
manifest referencing it later is safe as long as the link is younger than the grace period.
With a grace of 0 (the CLI's ``--grace 0``, for tests and emergencies) content that was
uploaded but not yet referenced may be collected; pushes then fail cleanly and are retried,
but nothing tagged or referenced is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from moorage.db import gc as qg
from moorage.db.engine import Database
from moorage.db.gc import GcRunRow, RepositoryGraph
from moorage.db.jobs import ScheduleRow
from moorage.jobs import cron
from moorage.services.access import Principal
from moorage.services.clock import Clock
from moorage.services.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from moorage.services.jobs import JobContext, JobService, PermanentFailure
from moorage.storage.base import BlobStore

log = logging.getLogger("moorage.gc")

#: The job kind and the name of the cron schedule.
JOB_KIND = "gc.run"
SCHEDULE_NAME = "gc"
#: A run queued or started longer ago than this is taken as lost (its process died).
STALE_RUN = dt.timedelta(hours=12)
#: Longest grace period accepted (a year): a typo should not switch collection off silently.
MAX_GRACE = dt.timedelta(days=366)

Progress = Callable[[str], Awaitable[None]]
T = TypeVar("T")


@dataclass
class GcReport:
    """What a run found (dry run) or removed."""

    dry_run: bool
    grace_seconds: float
    cutoff: str = ""
    repositories: int = 0
    manifests: int = 0
    manifest_bytes: int = 0
    blob_links: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    orphan_files: int = 0
    orphan_bytes: int = 0
    scans: int = 0
    restored_files: int = 0
    kept_manifests: int = 0
    kept_blobs: int = 0

    @property
    def bytes_freed(self) -> int:
        return self.manifest_bytes + self.blob_bytes + self.orphan_bytes

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes_freed": self.bytes_freed}


@dataclass
class _Plan:
    """The mark's candidates."""

    manifests: dict[int, list[int]] = field(default_factory=dict)  # repository id -> manifest ids
    links: dict[int, list[str]] = field(default_factory=dict)  # repository id -> digests
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size
    orphans: dict[str, int] = field(default_factory=dict)  # digest -> size


@dataclass(frozen=True, slots=True)
class RepositoryMark:
    garbage: list[int]  # manifest ids
    garbage_bytes: int
    garbage_links: list[str]
    kept_blobs: set[str]
    kept: int


def mark_repository(graph: RepositoryGraph, cutoff: dt.datetime) -> RepositoryMark:
    """Which of a repository's manifests and blob links are garbage (module docstring)."""
    by_digest = {m.digest: m for m in graph.manifests}
    referrers: dict[str, list[int]] = {}
    for m in graph.manifests:
        if m.subject_digest is not None:
            referrers.setdefault(m.subject_digest, []).append(m.id)
    by_id = {m.id: m for m in graph.manifests}
    kept: set[int] = set()
    todo = [m.id for m in graph.manifests if m.id in graph.tagged or m.pushed_at >= cutoff]
    while todo:
        mid = todo.pop()
        if mid in kept:
            continue
        kept.add(mid)
        for child in graph.children.get(mid, ()):
            found = by_digest.get(child)
            if found is not None and found.id not in kept:
                todo.append(found.id)
        todo.extend(r for r in referrers.get(by_id[mid].digest, ()) if r not in kept)
    garbage = [m for m in graph.manifests if m.id not in kept]
    kept_blobs: set[str] = set()
    for mid in kept:
        kept_blobs.update(graph.blobs_of.get(mid, ()))
    links = sorted(d for d, linked in graph.links.items() if linked < cutoff and d not in kept_blobs)
    return RepositoryMark([m.id for m in garbage], sum(m.size for m in garbage), links, kept_blobs, len(kept))


@dataclass
class GcService:
    db: Database
    store: BlobStore
    jobs: JobService
    clock: Clock
    default_grace: dt.timedelta
    #: the cron expression the settings ask for (``gc_schedule``); ``None``: as the API left it
    schedule_cron: str | None = None

    # -- the collection ------------------------------------------------------------------
    async def collect(
        self, *, dry_run: bool, grace: dt.timedelta | None = None, progress: Progress | None = None
    ) -> GcReport:
        """Mark, then (unless ``dry_run``) sweep; returns what was found or freed."""
        grace = self.default_grace if grace is None else grace
        say = progress or _quiet
        started = self.clock()
        cutoff = started - grace
        report = GcReport(dry_run, grace.total_seconds(), cutoff.isoformat())
        await say(
            f"mark: cutoff {cutoff.isoformat()} (grace {_span(grace)}){' — dry run' if dry_run else ''}"
        )
        plan = await self._mark(cutoff, report)
        await say(
            f"mark: {report.manifests} manifests ({report.manifest_bytes} bytes), {report.blob_links} blob links, "
            f"{report.blobs} blobs ({report.blob_bytes} bytes), {report.orphan_files} orphan files "
            f"({report.orphan_bytes} bytes) are garbage in {report.repositories} repositories"
        )
        if dry_run:
            await say(f"dry run: {report.bytes_freed} bytes would be freed; nothing was changed")
            return report
        # The sweep counts what it really removed: re-checks may keep some candidates.
        swept = GcReport(False, report.grace_seconds, report.cutoff, report.repositories)
        swept.kept_manifests, swept.kept_blobs = report.kept_manifests, report.kept_blobs
        swept.restored_files = await self._recover_set_aside()
        if swept.restored_files:
            await say(f"sweep: put back {swept.restored_files} files an interrupted run had set aside")
        await self._sweep_manifests(plan, cutoff, swept)
        await say(f"sweep: deleted {swept.manifests} manifests ({swept.scans} scan records)")
        await self._sweep_links(plan, cutoff, swept)
        await say(f"sweep: deleted {swept.blob_links} blob links")
        await self._sweep_blobs(plan, cutoff, swept)
        await say(f"sweep: deleted {swept.blobs} blobs ({swept.blob_bytes} bytes)")
        await self._sweep_orphans(plan, swept)
        await say(f"sweep: deleted {swept.orphan_files} orphan files ({swept.orphan_bytes} bytes)")
        await say(f"done: {swept.bytes_freed} bytes freed")
        return swept

    async def _mark(self, cutoff: dt.datetime, report: GcReport) -> _Plan:
        plan = _Plan()
        kept_refs: set[str] = set()
        garbage_links: dict[str, int] = {}
        async with self.db.read() as conn:
            repos = await qg.repository_ids(conn)
        for repo_id, name in repos:
            async with self.db.read() as conn:
                graph = await qg.repository_graph(conn, repo_id, name)
            marked = mark_repository(graph, cutoff)
            kept_refs |= marked.kept_blobs
            report.kept_manifests += marked.kept
            if marked.garbage:
                plan.manifests[repo_id] = marked.garbage
                report.manifests += len(marked.garbage)
                report.manifest_bytes += marked.garbage_bytes
            if marked.garbage_links:
                plan.links[repo_id] = marked.garbage_links
                report.blob_links += len(marked.garbage_links)
                for d in marked.garbage_links:
                    garbage_links[d] = garbage_links.get(d, 0) + 1
            if marked.garbage or marked.garbage_links:
                report.repositories += 1
        async with self.db.read() as conn:
            old = await qg.old_blobs(conn, cutoff)
            counts = await qg.link_counts(conn)
        for digest, size in old.items():
            # Every link it has is garbage (read after the repositories: a link made since
            # makes the counts differ, and the blob is kept), and no kept manifest needs it.
            if digest not in kept_refs and counts.get(digest, 0) == garbage_links.get(digest, 0):
                plan.blobs[digest] = size
        report.blobs, report.blob_bytes = len(plan.blobs), sum(plan.blobs.values())
        report.kept_blobs = len(kept_refs)
        files = {}
        limit = cutoff.timestamp()
        async for stored in self.store.list_blobs():
            if stored.modified < limit:
                files[stored.digest] = stored.size
        async with self.db.read() as conn:
            recorded = await qg.existing_blobs(conn, sorted(files))
        plan.orphans = {d: s for d, s in files.items() if d not in recorded}
        report.orphan_files, report.orphan_bytes = len(plan.orphans), sum(plan.orphans.values())
        return plan

    async def _recover_set_aside(self) -> int:
        """Files a sweep set aside and never deleted (it died): back if their row exists."""
        restored = 0
        pending = [d async for d in self.store.list_aside()]
        for chunk in _chunks(pending):
            async with self.db.write() as conn:
                await qg.exclude_references(conn)
                for digest in chunk:
                    if await qg.blob_exists(conn, digest):
                        restored += await self.store.restore_aside(digest)
                    else:
                        await self.store.purge_aside(digest)
        return restored

    async def _sweep_manifests(self, plan: _Plan, cutoff: dt.datetime, report: GcReport) -> None:
        for repo_id, ids in plan.manifests.items():
            remaining = set(ids)
            while remaining:
                deleted: list[tuple[int, str, int]] = []
                for chunk in _chunks(sorted(remaining)):
                    async with self.db.write() as conn:
                        await qg.exclude_references(conn)
                        rows = await qg.delete_manifests(conn, repo_id, chunk, cutoff)
                        report.scans += await qg.delete_scans(conn, repo_id, [d for _, d, _ in rows])
                    deleted.extend(rows)
                if not deleted:
                    break  # the rest is kept now (tagged, listed, or its subject is back)
                remaining -= {mid for mid, _, _ in deleted}
                report.manifests += len(deleted)
                report.manifest_bytes += sum(size for _, _, size in deleted)

    async def _sweep_links(self, plan: _Plan, cutoff: dt.datetime, report: GcReport) -> None:
        for repo_id, digests in plan.links.items():
            for chunk in _chunks(digests):
                async with self.db.write() as conn:
                    await qg.exclude_references(conn)
                    report.blob_links += len(await qg.delete_links(conn, repo_id, chunk, cutoff))

    async def _sweep_blobs(self, plan: _Plan, cutoff: dt.datetime, report: GcReport) -> None:
        for chunk in _chunks(sorted(plan.blobs)):
            moved: list[str] = []
            try:
                async with self.db.write() as conn:
                    await qg.exclude_references(conn)
                    deleted = await qg.delete_blobs(conn, chunk, cutoff)
                    for digest, _ in deleted:
                        if await self.store.set_aside(digest):
                            moved.append(digest)
            except BaseException:
                for digest in moved:  # the rows are back: so are their files
                    await self.store.restore_aside(digest)
                raise
            for digest in moved:
                await self.store.purge_aside(digest)
            report.blobs += len(deleted)
            report.blob_bytes += sum(size for _, size in deleted)

    async def _sweep_orphans(self, plan: _Plan, report: GcReport) -> None:
        for chunk in _chunks(sorted(plan.orphans)):
            moved: list[str] = []
            try:
                async with self.db.write() as conn:
                    await qg.exclude_references(conn)
                    recorded = await qg.existing_blobs(conn, chunk)
                    for digest in chunk:
                        if digest not in recorded and await self.store.set_aside(digest):
                            moved.append(digest)
            except BaseException:
                for digest in moved:
                    await self.store.restore_aside(digest)
                raise
            for digest in moved:
                await self.store.purge_aside(digest)
            report.orphan_files += len(moved)
            report.orphan_bytes += sum(plan.orphans[d] for d in moved)

    # -- runs: on demand (API, CLI) and scheduled -----------------------------------------
    def _grace(self, grace_seconds: float | None) -> dt.timedelta:
        if grace_seconds is None:
            return self.default_grace
        if not 0 <= grace_seconds <= MAX_GRACE.total_seconds():
            raise InvalidInput(
                f"the grace period must be between 0 and {int(MAX_GRACE.total_seconds())} seconds",
                "graceSeconds",
            )
        return dt.timedelta(seconds=grace_seconds)

    async def request(
        self, principal: Principal, dry_run: bool, grace_seconds: float | None = None
    ) -> GcRunRow:
        """Queue a run (administrators); it runs as a ``gc.run`` job. One run at a time."""
        _require_admin(principal)
        grace = self._grace(grace_seconds)
        now = self.clock()
        async with self.db.write() as conn:
            active = await qg.active_run(conn, now - STALE_RUN)
            if active is not None:
                raise AlreadyExists(
                    f"garbage collection run {active.id} is {active.status}: wait for it to finish"
                )
            run_id = await qg.insert_run(
                conn,
                dry_run=dry_run,
                trigger="api",
                requested_by=principal.username,
                grace_seconds=grace.total_seconds(),
                now=now,
            )
            job_id = await self.jobs.enqueue(JOB_KIND, {"runId": run_id}, conn=conn)
            assert job_id is not None  # no dedupe key
            await qg.set_job(conn, run_id, job_id)
            found = await qg.get_run(conn, run_id)
        assert found is not None
        return found

    async def handle_job(self, ctx: JobContext) -> dict[str, Any]:
        """The ``gc.run`` job: a run queued by ``request``, or one a schedule fired."""
        payload = ctx.payload
        now = self.clock()
        if "runId" in payload:
            run_id = int(payload["runId"])
        else:  # fired by the schedule
            async with self.db.write() as conn:
                active = await qg.active_run(conn, now - STALE_RUN)
                if active is not None:
                    await ctx.log(f"skipped: garbage collection run {active.id} is {active.status}")
                    return {"skipped": True, "activeRun": active.id}
                run_id = await qg.insert_run(
                    conn,
                    dry_run=bool(payload.get("dryRun", False)),
                    trigger="schedule",
                    requested_by=str(payload.get("schedule") or SCHEDULE_NAME),
                    grace_seconds=float(payload.get("graceSeconds", self.default_grace.total_seconds())),
                    now=now,
                )
                await qg.set_job(conn, run_id, ctx.job.id)
        async with self.db.write() as conn:
            if not await qg.start_run(conn, run_id, now, ctx.job.id):
                raise PermanentFailure(f"garbage collection run {run_id} is not queued")
            run = await qg.get_run(conn, run_id)
        assert run is not None
        await ctx.log(f"garbage collection run {run_id} started")
        report = await self._execute(run, ctx.log, in_job=True)
        return {"runId": run_id, **report.as_dict()}

    async def run_now(
        self,
        *,
        dry_run: bool,
        grace: dt.timedelta | None = None,
        requested_by: str | None = None,
        progress: Progress | None = None,
    ) -> tuple[GcRunRow, GcReport]:
        """Run here and now (the CLI), recorded like any other run."""
        grace = self.default_grace if grace is None else self._grace(grace.total_seconds())
        now = self.clock()
        async with self.db.write() as conn:
            active = await qg.active_run(conn, now - STALE_RUN)
            if active is not None:
                raise AlreadyExists(
                    f"garbage collection run {active.id} is {active.status}: wait for it to finish"
                )
            run_id = await qg.insert_run(
                conn,
                dry_run=dry_run,
                trigger="cli",
                requested_by=requested_by,
                grace_seconds=grace.total_seconds(),
                now=now,
                status=qg.RUNNING,
            )
            run = await qg.get_run(conn, run_id)
        assert run is not None
        report = await self._execute(run, progress, in_job=False)
        return await self.run(run_id), report

    async def _execute(self, run: GcRunRow, progress: Progress | None, *, in_job: bool) -> GcReport:
        grace = dt.timedelta(seconds=run.grace_seconds)
        try:
            report = await self.collect(dry_run=run.dry_run, grace=grace, progress=progress)
        except BaseException as exc:
            if in_job and not isinstance(exc, Exception):
                raise  # the server is stopping: the job runs again at the next start, and the run with it
            # Failed, or interrupted (Ctrl-C in the CLI): the run is over and says so; what it
            # swept is gone, the next run sweeps the rest.
            error = f"{type(exc).__name__}: {exc}" if isinstance(exc, Exception) else "interrupted"
            log.log(
                logging.ERROR if isinstance(exc, Exception) else logging.WARNING,
                "garbage collection run %d: %s",
                run.id,
                error,
                exc_info=isinstance(exc, Exception),
            )
            async with self.db.write() as conn:
                await qg.finish_run(
                    conn,
                    run.id,
                    status=qg.FAILED,
                    now=self.clock(),
                    manifests_deleted=0,
                    blob_links_deleted=0,
                    blobs_deleted=0,
                    bytes_freed=0,
                    summary={},
                    error=error,
                )
            if not isinstance(exc, Exception):
                raise
            raise PermanentFailure(error) from exc
        async with self.db.write() as conn:
            await qg.finish_run(
                conn,
                run.id,
                status=qg.SUCCEEDED,
                now=self.clock(),
                manifests_deleted=report.manifests,
                blob_links_deleted=report.blob_links,
                blobs_deleted=report.blobs + report.orphan_files,
                bytes_freed=report.bytes_freed,
                summary=report.as_dict(),
                error=None,
            )
        return report

    async def runs(
        self, principal: Principal, offset: int = 0, limit: int = 50
    ) -> tuple[list[GcRunRow], int]:
        _require_admin(principal)
        async with self.db.read() as conn:
            return await qg.list_runs(conn, offset, limit)

    async def run(self, run_id: int, principal: Principal | None = None) -> GcRunRow:
        if principal is not None:
            _require_admin(principal)
        async with self.db.read() as conn:
            found = await qg.get_run(conn, run_id)
        if found is None:
            raise NotFound(f"garbage collection run {run_id} does not exist")
        return found

    async def run_log(self, run: GcRunRow) -> str | None:
        """The log of the run's job (``None`` for a run without one, e.g. from the CLI)."""
        if run.job_id is None:
            return None
        try:
            return (await self.jobs.get(run.job_id)).log
        except NotFound:
            return None

    # -- the schedule ---------------------------------------------------------------------
    async def schedule(self, principal: Principal) -> ScheduleRow | None:
        _require_admin(principal)
        return await self.jobs.get_schedule(SCHEDULE_NAME)

    async def set_schedule(self, principal: Principal, cron: str, enabled: bool) -> ScheduleRow:
        """Create or replace the collection's cron schedule; ``InvalidInput`` (``cron``) if it does not parse."""
        _require_admin(principal)
        return await self.jobs.schedule(SCHEDULE_NAME, JOB_KIND, cron, {"dryRun": False}, enabled=enabled)

    async def apply_configured_schedule(self) -> None:
        """At start: the settings' ``gc_schedule``, when set, is the (enabled) schedule."""
        if self.schedule_cron is None:
            return
        try:
            expression = cron.validate(self.schedule_cron)
        except cron.CronError as exc:
            raise InvalidInput(f"setting gc_schedule: {exc}", "gc_schedule") from None
        current = await self.jobs.get_schedule(SCHEDULE_NAME)
        if current is None or current.cron != expression or not current.enabled:
            await self.jobs.schedule(SCHEDULE_NAME, JOB_KIND, self.schedule_cron, {"dryRun": False})


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only administrators may run or inspect garbage collection")


async def _quiet(_line: str) -> None:
    return None


def _chunks(items: Iterable[T], size: int = qg.BATCH) -> Iterable[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
