"""The offline vulnerability database: import OSV records, report its version, match components.

An import is one write transaction: a file that cannot be read (a corrupt zip, say) rolls it
back and the previous data stays in use. Records that do not validate are skipped and listed
(file and field). A record replaces the stored one only when its ``modified`` is newer, so
importing the same data twice changes nothing but the import time. Withdrawn records are
kept (a newer non-withdrawn version may come back) but never matched. A source that holds no
valid record at all (an empty or foreign archive) is refused and changes nothing.

Files are read, decoded, validated and serialized in a worker thread, a batch at a time, and
matching decodes records and evaluates ranges in one too: the event loop of a server that
imports or re-matches keeps answering requests (only the database writes run on it).

The database ``version`` is a digest of every stored (id, modified, withdrawn): it changes
exactly when the data does, which is what a rescan after an update keys on.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moorage.db import vulndb as q
from moorage.db.engine import Database
from moorage.scanner import osv
from moorage.scanner.matching import Component, Finding, Matcher, MemorySource, lookup_name
from moorage.scanner.severity import rate
from moorage.scanner.versions import base_ecosystem, normalize_name
from moorage.services.clock import Clock
from moorage.services.errors import InvalidInput
from moorage.services.events import VULNDB_UPDATED, EventLog

__all__ = ["ImportReport", "InvalidFile", "VulnDbService", "VulnDbStatus"]

_BATCH = 1000
_READ_BATCH = 250  # records decoded per trip to the worker thread
_PARSED_CACHE = 50_000


@dataclass(frozen=True, slots=True)
class InvalidFile:
    source: str  # the file (inside its archive: PyPI/all.zip/PYSEC-2019-155.json)
    field: str  # the JSON path of the field at fault, "" for the whole file
    message: str

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.field}: {self.message}" if self.field else f"{self.source}: {self.message}"
        )


@dataclass
class ImportReport:
    version: str = ""
    imported_at: Any = None
    records: int = 0  # valid records read
    added: int = 0
    updated: int = 0
    unchanged: int = 0  # already held with the same or a newer modified
    withdrawn: int = 0  # withdrawn records among those read
    ecosystems: dict[str, int] = field(default_factory=dict)  # valid records read, per base ecosystem
    invalid: list[InvalidFile] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "withdrawn": self.withdrawn,
            "invalid": len(self.invalid),
            "ecosystems": dict(sorted(self.ecosystems.items())),
        }


@dataclass(frozen=True)
class VulnDbStatus:
    version: str | None  # None until the first import
    imported_at: Any
    records: int  # in force (not withdrawn)
    withdrawn: int
    ecosystems: dict[str, int]  # records in force per ecosystem as the data names it (Debian:11)
    last_import: dict[str, Any] | None  # the counts of the last import


_Rows = tuple[dict[str, Any], list[dict[str, Any]]]


def _take(
    records: Iterator[osv.Vulnerability | osv.InvalidRecord], known: dict[str, Any], size: int
) -> list[tuple[osv.Vulnerability | osv.InvalidRecord, _Rows | None]]:
    """Up to ``size`` records, each with its rows when it is newer than what is held (in a thread)."""
    out: list[tuple[osv.Vulnerability | osv.InvalidRecord, _Rows | None]] = []
    for item in records:
        rows = None
        if isinstance(item, osv.Vulnerability):
            previous = known.get(item.id)
            if previous is None or item.modified > previous:
                rows = VulnDbService._rows(item)
        out.append((item, rows))
        if len(out) >= size:
            break
    return out


async def _read_off_loop(
    path: Path, known: dict[str, Any]
) -> AsyncIterator[tuple[osv.Vulnerability | osv.InvalidRecord, _Rows | None]]:
    """``osv.read_records(path)`` read, decoded, validated and serialized in a worker thread, a
    batch at a time, so the event loop keeps serving requests during an import. ``known`` is only
    read by the thread while the caller waits for the batch (it is updated between batches)."""
    records = osv.read_records(path)
    while batch := await asyncio.to_thread(_take, records, known, _READ_BATCH):
        for entry in batch:
            yield entry


class VulnDbService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        #: where completed imports are announced (VULNDB_UPDATED); set by the container
        self.events: EventLog | None = None
        self._parsed: OrderedDict[tuple[str, Any], osv.Vulnerability] = OrderedDict()
        self._parsed_lock = threading.Lock()

    async def import_path(self, path: Path, progress: Callable[[int], None] | None = None) -> ImportReport:
        """Import every record under ``path`` (directory, .zip, .tar.gz or .json), atomically."""
        started = time.monotonic()
        report = ImportReport()
        per_ecosystem: Counter[str] = Counter()
        try:
            async with self.db.write() as conn:
                known = await q.modified_times(conn)  # what the database holds (and what was flushed)
                pending: dict[str, tuple[osv.Vulnerability, dict[str, Any], list[dict[str, Any]]]] = {}
                stale: list[str] = []  # stored ids to delete before the pending rows go in
                read = 0

                async def flush() -> None:
                    await q.delete_records(conn, stale)
                    await q.insert_records(
                        conn,
                        [row for _, row, _ in pending.values()],
                        [p for *_, pk in pending.values() for p in pk],
                    )
                    for vuln_id, (record, _, _) in pending.items():
                        known[vuln_id] = record.modified
                    pending.clear()
                    stale.clear()

                async for item, rows in _read_off_loop(Path(path), known):
                    read += 1
                    if progress is not None and read % 500 == 0:
                        progress(read)
                    if isinstance(item, osv.InvalidRecord):
                        report.invalid.append(InvalidFile(item.source, item.path, item.message))
                        continue
                    report.records += 1
                    if item.withdrawn is not None:
                        report.withdrawn += 1
                    per_ecosystem.update({base_ecosystem(eco) for eco, _ in item.packages})
                    in_pending = pending.get(item.id)
                    previous = in_pending[0].modified if in_pending else known.get(item.id)
                    if previous is not None and item.modified <= previous:
                        report.unchanged += 1
                        continue
                    if item.id in known:
                        report.updated += 1
                        if in_pending is None:
                            stale.append(item.id)
                    elif in_pending is not None:
                        report.updated += 1
                    else:
                        report.added += 1
                    pending[item.id] = (item, *(rows or self._rows(item)))
                    if len(pending) >= _BATCH:
                        await flush()
                await flush()
                if progress is not None:
                    progress(read)
                if report.records == 0:  # raised inside the transaction: nothing is changed
                    first = "; ".join(str(i) for i in report.invalid[:3])
                    raise InvalidInput(
                        f"the import was not applied: {Path(path).name} holds no valid OSV record"
                        + (f" ({len(report.invalid)} invalid: {first})" if first else ""),
                        field="path",
                    )
                report.ecosystems = dict(sorted(per_ecosystem.items()))
                report.version = await q.content_version(conn)
                report.imported_at = self.clock()
                await q.add_import(conn, report.version, report.imported_at, report.counts())
                if self.events is not None:
                    await self.events.emit(
                        conn,
                        VULNDB_UPDATED,
                        contents={
                            "version": report.version,
                            "importedAt": report.imported_at.isoformat(),
                            **report.counts(),
                        },
                    )
        except osv.ArchiveError as exc:
            raise InvalidInput(f"the import was not applied: {exc}", field="path") from None
        report.seconds = time.monotonic() - started
        return report

    @staticmethod
    def _rows(item: osv.Vulnerability) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rating = rate(item)
        row = {
            "id": item.id,
            "modified": item.modified,
            "withdrawn": item.withdrawn,
            "record": json.dumps(item.raw, separators=(",", ":"), ensure_ascii=False),
            "summary": item.summary,
            "severity": rating.severity,
            "score": rating.score,
        }
        names = {(eco, normalize_name(eco, name)) for eco, name in item.packages}
        packages = [{"vuln_id": item.id, "ecosystem": eco, "name": name} for eco, name in sorted(names)]
        return row, packages

    async def status(self) -> VulnDbStatus:
        async with self.db.read() as conn:
            last = await q.latest_import(conn)
            in_force, withdrawn = await q.total_records(conn)
            ecosystems = await q.records_per_ecosystem(conn)
        return VulnDbStatus(
            version=last.version if last else None,
            imported_at=last.imported_at if last else None,
            records=in_force,
            withdrawn=withdrawn,
            ecosystems=ecosystems,
            last_import=last.counts if last else None,
        )

    async def version(self) -> str | None:
        async with self.db.read() as conn:
            last = await q.latest_import(conn)
        return last.version if last else None

    async def _stored(self, components: Iterable[Component]) -> list[q.StoredRecord]:
        keys = [(c.ecosystem, normalize_name(c.ecosystem, lookup_name(c))) for c in components]
        async with self.db.read() as conn:
            return await q.candidates(conn, keys)

    async def records(self, components: Iterable[Component]) -> list[osv.Vulnerability]:
        """The records in force that name any of the components (by lookup name)."""
        return [self._parse(s) for s in await self._stored(components)]

    async def match(self, components: Sequence[Component]) -> list[Finding]:
        """Findings for ``components`` against the database as it is now.

        Decoding the records and evaluating the ranges is CPU work (a large image, or a re-match of
        every scan after an import): it runs in a worker thread so the event loop stays responsive.
        """
        stored = await self._stored(components)
        return await asyncio.to_thread(self._match_stored, stored, components)

    def _match_stored(self, stored: list[q.StoredRecord], components: Sequence[Component]) -> list[Finding]:
        return Matcher(MemorySource([self._parse(s) for s in stored])).match(components)

    def _parse(self, stored: q.StoredRecord) -> osv.Vulnerability:
        key = (stored.id, stored.modified)
        with self._parsed_lock:  # matches of concurrent scans parse in their own threads
            cached = self._parsed.get(key)
            if cached is not None:
                self._parsed.move_to_end(key)
                return cached
        record = osv.parse_record(json.loads(stored.record), stored.id)
        with self._parsed_lock:
            self._parsed[key] = record
            if len(self._parsed) > _PARSED_CACHE:
                self._parsed.popitem(last=False)
        return record
