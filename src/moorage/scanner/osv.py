"""OSV records (schema 1.x): validation into typed records, and streaming readers.

``parse_record(data, source)`` validates one decoded JSON object and returns a
``Vulnerability`` or raises ``InvalidRecord`` naming the source (file name) and the field.
``read_records(path)`` yields each record of a directory (recursively: ``.json`` files and
the archives below), an osv.dev ``all.zip``, a ``.tar.gz`` or a single ``.json`` file, one
file at a time; records that do not validate are yielded as ``InvalidRecord`` so an import
can report them and go on. An archive that cannot be read raises ``ArchiveError``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Affected",
    "ArchiveError",
    "Event",
    "InvalidRecord",
    "Package",
    "Range",
    "Severity",
    "Vulnerability",
    "count_files",
    "parse_record",
    "parse_timestamp",
    "read_records",
]

RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER", "GIT"})
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
SEVERITY_TYPES = frozenset({"CVSS_V2", "CVSS_V3", "CVSS_V4", "Ubuntu"})
_GIT_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_MAX_RECORD_BYTES = 32 * 1024 * 1024  # one record; the largest real ones are ~1 MB


class InvalidRecord(ValueError):
    """A record that does not validate: where it came from, which field, and why."""

    def __init__(self, source: str, path: str, message: str) -> None:
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")
        self.source = source
        self.path = path  # the field, as a JSON path: affected[0].ranges[1].events[2].fixed
        self.message = message


class ArchiveError(ValueError):
    """A file or archive that cannot be read at all (corrupt zip, truncated tar, missing path)."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # introduced | fixed | last_affected | limit
    value: str


@dataclass(frozen=True, slots=True)
class Range:
    type: str  # ECOSYSTEM | SEMVER | GIT
    events: tuple[Event, ...]
    repo: str | None = None


@dataclass(frozen=True, slots=True)
class Package:
    ecosystem: str
    name: str
    purl: str | None = None


@dataclass(frozen=True, slots=True)
class Affected:
    package: Package | None
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()
    severity: tuple[Severity, ...] = ()
    ecosystem_specific: dict[str, Any] | None = None
    database_specific: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Severity:
    type: str  # CVSS_V2 | CVSS_V3 | CVSS_V4 | Ubuntu
    score: str


@dataclass(frozen=True, slots=True)
class Reference:
    type: str
    url: str


@dataclass(frozen=True, slots=True)
class Vulnerability:
    id: str
    modified: dt.datetime
    published: dt.datetime | None = None
    withdrawn: dt.datetime | None = None
    aliases: tuple[str, ...] = ()
    summary: str | None = None
    details: str | None = None
    severity: tuple[Severity, ...] = ()
    affected: tuple[Affected, ...] = ()
    references: tuple[Reference, ...] = ()
    database_specific: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def packages(self) -> set[tuple[str, str]]:
        """Every (ecosystem, name) the record names."""
        return {(a.package.ecosystem, a.package.name) for a in self.affected if a.package is not None}


def parse_timestamp(value: str) -> dt.datetime:
    """An RFC 3339 timestamp, always timezone-aware (UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> InvalidRecord:
        return InvalidRecord(self.source, path, message)

    def string(self, obj: dict[str, Any], key: str, path: str, required: bool = False) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                raise self.fail(path + key, "is required")
            return None
        if not isinstance(value, str):
            raise self.fail(path + key, f"must be a string, not {type(value).__name__}")
        if required and not value:
            raise self.fail(path + key, "must not be empty")
        return value

    def timestamp(
        self, obj: dict[str, Any], key: str, path: str, required: bool = False
    ) -> dt.datetime | None:
        value = self.string(obj, key, path, required)
        if value is None:
            return None
        try:
            return parse_timestamp(value)
        except ValueError:
            raise self.fail(path + key, f"is not an RFC 3339 timestamp: {value!r}") from None

    def array(self, obj: dict[str, Any], key: str, path: str) -> list[Any]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path + key, f"must be an array, not {type(value).__name__}")
        return value

    def strings(self, obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
        values = self.array(obj, key, path)
        for i, item in enumerate(values):
            if not isinstance(item, str):
                raise self.fail(f"{path}{key}[{i}]", "must be a string")
        return tuple(values)

    def object(self, obj: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(path + key, f"must be an object, not {type(value).__name__}")
        return value

    def severities(self, obj: dict[str, Any], path: str) -> tuple[Severity, ...]:
        out = []
        for i, item in enumerate(self.array(obj, "severity", path)):
            where = f"{path}severity[{i}]."
            if not isinstance(item, dict):
                raise self.fail(where[:-1], "must be an object")
            kind = self.string(item, "type", where, required=True)
            score = self.string(item, "score", where, required=True)
            assert kind is not None
            assert score is not None
            if kind not in SEVERITY_TYPES:
                raise self.fail(where + "type", f"unknown severity type {kind!r}")
            out.append(Severity(kind, score))
        return tuple(out)

    def range(self, item: Any, path: str) -> Range:
        if not isinstance(item, dict):
            raise self.fail(path[:-1], "must be an object")
        kind = self.string(item, "type", path, required=True)
        if kind not in RANGE_TYPES:
            raise self.fail(path + "type", f"must be one of ECOSYSTEM, SEMVER, GIT, not {kind!r}")
        repo = self.string(item, "repo", path)
        if kind == "GIT" and not repo:
            raise self.fail(path + "repo", "is required for a GIT range")
        raw_events = self.array(item, "events", path)
        if not raw_events:
            raise self.fail(path + "events", "must hold at least one event")
        events = []
        for j, ev in enumerate(raw_events):
            where = f"{path}events[{j}]"
            if not isinstance(ev, dict) or len(ev) != 1:
                raise self.fail(where, "must be an object with exactly one of " + ", ".join(EVENT_KINDS))
            ((key, value),) = ev.items()
            if key not in EVENT_KINDS:
                raise self.fail(f"{where}.{key}", "is not an event kind")
            if not isinstance(value, str) or not value:
                raise self.fail(f"{where}.{key}", "must be a non-empty string")
            if kind == "GIT" and not (key == "introduced" and value == "0") and not _GIT_COMMIT.match(value):
                raise self.fail(
                    f"{where}.{key}", f"must be a full 40-hex commit hash in a GIT range, not {value!r}"
                )
            events.append(Event(key, value))
        if not any(e.kind == "introduced" for e in events):
            raise self.fail(path + "events", "needs an 'introduced' event")
        return Range(kind, tuple(events), repo)

    def affected(self, item: Any, path: str) -> Affected:
        if not isinstance(item, dict):
            raise self.fail(path[:-1], "must be an object")
        package = None
        pkg = self.object(item, "package", path)
        if pkg is not None:
            where = path + "package."
            ecosystem = self.string(pkg, "ecosystem", where, required=True)
            name = self.string(pkg, "name", where, required=True)
            assert ecosystem is not None
            assert name is not None
            package = Package(ecosystem, name, self.string(pkg, "purl", where))
        ranges = tuple(
            self.range(r, f"{path}ranges[{k}].") for k, r in enumerate(self.array(item, "ranges", path))
        )
        return Affected(
            package,
            ranges,
            self.strings(item, "versions", path),
            self.severities(item, path),
            self.object(item, "ecosystem_specific", path),
            self.object(item, "database_specific", path),
        )


def parse_record(data: Any, source: str) -> Vulnerability:
    """Validate one decoded OSV record; ``source`` names it in errors (a file name)."""
    check = _Checker(source)
    if not isinstance(data, dict):
        raise check.fail("", f"an OSV record is a JSON object, not {type(data).__name__}")
    vuln_id = check.string(data, "id", "", required=True)
    modified = check.timestamp(data, "modified", "", required=True)
    assert vuln_id is not None
    assert modified is not None
    refs = []
    for i, ref in enumerate(check.array(data, "references", "")):
        if not isinstance(ref, dict):
            raise check.fail(f"references[{i}]", "must be an object")
        url = check.string(ref, "url", f"references[{i}].", required=True)
        refs.append(Reference(check.string(ref, "type", f"references[{i}].") or "WEB", url or ""))
    return Vulnerability(
        id=vuln_id,
        modified=modified,
        published=check.timestamp(data, "published", ""),
        withdrawn=check.timestamp(data, "withdrawn", ""),
        aliases=check.strings(data, "aliases", ""),
        summary=check.string(data, "summary", ""),
        details=check.string(data, "details", ""),
        severity=check.severities(data, ""),
        affected=tuple(
            check.affected(a, f"affected[{i}].") for i, a in enumerate(check.array(data, "affected", ""))
        ),
        references=tuple(refs),
        database_specific=check.object(data, "database_specific", ""),
        raw=data,
    )


def _decode(content: bytes, source: str) -> Vulnerability | InvalidRecord:
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        return InvalidRecord(source, "", f"not JSON: {exc}")
    try:
        return parse_record(data, source)
    except InvalidRecord as exc:
        return exc


def _read_zip(path: Path, label: str) -> Iterator[Vulnerability | InvalidRecord]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{label}: not a readable zip archive: {exc}") from exc
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            source = f"{label}/{info.filename}"
            if info.file_size > _MAX_RECORD_BYTES:
                yield InvalidRecord(source, "", f"larger than {_MAX_RECORD_BYTES} bytes")
                continue
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise ArchiveError(f"{source}: cannot be read from the archive: {exc}") from exc
            yield _decode(content, source)


def _read_tar(path: Path, label: str) -> Iterator[Vulnerability | InvalidRecord]:
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if not member.isfile() or not member.name.endswith(".json"):
                    continue
                source = f"{label}/{member.name}"
                if member.size > _MAX_RECORD_BYTES:
                    yield InvalidRecord(source, "", f"larger than {_MAX_RECORD_BYTES} bytes")
                    continue
                stream = archive.extractfile(member)
                if stream is None:
                    continue
                yield _decode(stream.read(), source)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{label}: not a readable tar archive: {exc}") from exc


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.zst", ".tar.xz", ".tar.bz2")):
        return "tar"
    return None


def _read_file(path: Path, label: str) -> Iterator[Vulnerability | InvalidRecord]:
    kind = _kind(path)
    if kind == "zip":
        yield from _read_zip(path, label)
    elif kind == "tar":
        yield from _read_tar(path, label)
    elif kind == "json":
        try:
            if path.stat().st_size > _MAX_RECORD_BYTES:
                yield InvalidRecord(label, "", f"larger than {_MAX_RECORD_BYTES} bytes")
                return
            content = path.read_bytes()
        except OSError as exc:
            raise ArchiveError(f"{label}: cannot be read: {exc}") from exc
        yield _decode(content, label)
    else:
        raise ArchiveError(f"{label}: not a .json, .zip or .tar.gz file")


def read_records(path: Path) -> Iterator[Vulnerability | InvalidRecord]:
    """Every record under ``path``, one file at a time, in a stable order."""
    path = Path(path)
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None):
            yield from _read_file(item, item.relative_to(path).as_posix())
    elif path.is_file():
        yield from _read_file(path, path.name)
    else:
        raise ArchiveError(f"{path}: no such file or directory")


def count_files(path: Path) -> int | None:
    """How many record files ``path`` holds, when cheap to know (for a progress bar)."""
    path = Path(path)
    try:
        if path.is_dir():
            total = 0
            for item in path.rglob("*"):
                kind = _kind(item) if item.is_file() else None
                if kind == "json":
                    total += 1
                elif kind == "zip":
                    with zipfile.ZipFile(item) as archive:
                        total += sum(1 for n in archive.namelist() if n.endswith(".json"))
                elif kind == "tar":
                    return None
            return total
        kind = _kind(path)
        if kind == "json":
            return 1
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                return sum(1 for n in archive.namelist() if n.endswith(".json"))
    except (OSError, zipfile.BadZipFile):
        return None
    return None
