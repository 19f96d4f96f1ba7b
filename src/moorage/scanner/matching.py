"""Is this package version affected by this OSV record? And the findings for a list of components.

``affected(entry, ecosystem, name, version)`` evaluates one ``affected[]`` entry the way the
OSV specification describes: the explicit ``versions`` list, then each ``ECOSYSTEM`` /
``SEMVER`` range (events sorted by the range's version order; ``introduced: "0"`` is before
every version; ``last_affected`` is inclusive; ``limit`` caps the range). ``GIT`` ranges are
not evaluated (a component has no commit). A version the ecosystem cannot order (a
non-PEP-440 PyPI version, say) only matches the explicit list.

``Matcher`` turns components into ``Finding``s over any ``VulnerabilitySource`` (the database
service prefetches candidates into a ``MemorySource``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from moorage.scanner import severity as sev
from moorage.scanner import versions
from moorage.scanner.osv import Affected, Event, Range, Vulnerability

__all__ = [
    "SOURCE_NAMED_ECOSYSTEMS",
    "Component",
    "Finding",
    "Matcher",
    "MemorySource",
    "VulnerabilitySource",
    "affected",
    "fixed_versions",
    "lookup_name",
]

#: OS ecosystems whose OSV records name source packages (dpkg ``Source:``, apk origin).
SOURCE_NAMED_ECOSYSTEMS = frozenset({"Debian", "Ubuntu", "Alpine"})


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    version: str
    ecosystem: str  # with its release where it has one: Debian:12, Alpine:v3.19, AlmaLinux:9
    source_name: str | None = None
    source_version: str | None = None  # dpkg "Source: name (version)" when it differs
    purl: str | None = None
    layer: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    aliases: tuple[str, ...]
    severity: str | None
    score: float | None
    package: str
    ecosystem: str
    version: str
    fixed_versions: tuple[str, ...]
    summary: str | None
    references: tuple[str, ...]
    component: Component = field(compare=False)


def lookup_name(component: Component) -> str:
    """The name a component is looked up by: its source package for OS ecosystems that use it."""
    if versions.base_ecosystem(component.ecosystem) in SOURCE_NAMED_ECOSYSTEMS and component.source_name:
        return component.source_name
    return component.name


def _lookup_version(component: Component) -> str:
    if versions.base_ecosystem(component.ecosystem) in SOURCE_NAMED_ECOSYSTEMS and component.source_version:
        return component.source_version
    return component.version


def _parser(range_type: str, ecosystem: str) -> Any:
    if range_type == "SEMVER":
        return versions.parse_semver
    return lambda text: versions.parse(ecosystem, text)


def _in_range(rng: Range, ecosystem: str, version: str) -> bool:
    parse = _parser(rng.type, ecosystem)
    try:
        current = parse(version)
        # Sort key: the version, then "0" introduced first; a zero sorts before everything.
        keyed: list[tuple[int, Any, Event]] = []
        for event in rng.events:
            if event.kind == "introduced" and event.value == "0":
                keyed.append((0, None, event))
            else:
                keyed.append((1, parse(event.value), event))
    except versions.UnorderableVersion:
        return False
    zeros = [k for k in keyed if k[0] == 0]
    others = sorted((k for k in keyed if k[0] == 1), key=lambda k: k[1])
    is_affected = False
    for _, value, event in zeros + others:
        if event.kind == "introduced":
            if value is None or current >= value:
                is_affected = True
        elif event.kind == "fixed":
            if current >= value:
                is_affected = False
        elif event.kind == "last_affected":
            if current > value:
                is_affected = False
        elif event.kind == "limit" and current >= value:
            return False
    return is_affected


def _same_version(ecosystem: str, a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return bool(versions.parse(ecosystem, a) == versions.parse(ecosystem, b))
    except versions.UnorderableVersion:
        return False


def affected(entry: Affected, ecosystem: str, name: str, version: str) -> bool:
    """Whether ``name`` at ``version`` in ``ecosystem`` is affected according to ``entry``."""
    package = entry.package
    if package is None or package.ecosystem != ecosystem:
        return False
    if versions.normalize_name(ecosystem, package.name) != versions.normalize_name(ecosystem, name):
        return False
    if version in entry.versions:
        return True
    for rng in entry.ranges:
        if rng.type in ("ECOSYSTEM", "SEMVER") and _in_range(rng, ecosystem, version):
            return True
    # PyPI publishes the complete list: 1.0 and 1.0.0 are the same version there.
    return versions.base_ecosystem(ecosystem) == "PyPI" and any(
        _same_version(ecosystem, version, listed) for listed in entry.versions
    )


def fixed_versions(entry: Affected) -> tuple[str, ...]:
    out: list[str] = []
    for rng in entry.ranges:
        if rng.type == "GIT":
            continue
        out.extend(e.value for e in rng.events if e.kind == "fixed" and e.value not in out)
    return tuple(out)


class VulnerabilitySource(Protocol):
    def candidates(self, ecosystem: str, name: str) -> Iterable[Vulnerability]:
        """Records that name ``name`` (normalized) in ``ecosystem``; withdrawn ones excluded."""
        ...


class MemorySource:
    """Records held in memory, indexed by (ecosystem, normalized name)."""

    def __init__(self, records: Iterable[Vulnerability] = ()) -> None:
        self._index: dict[tuple[str, str], list[Vulnerability]] = defaultdict(list)
        for record in records:
            self.add(record)

    def add(self, record: Vulnerability) -> None:
        if record.withdrawn is not None:
            return
        for ecosystem, name in record.packages:
            key = (ecosystem, versions.normalize_name(ecosystem, name))
            bucket = self._index[key]
            if all(r.id != record.id for r in bucket):
                bucket.append(record)

    def candidates(self, ecosystem: str, name: str) -> Iterable[Vulnerability]:
        return self._index.get((ecosystem, versions.normalize_name(ecosystem, name)), ())


class Matcher:
    """Findings for components against a source of records."""

    def __init__(self, source: VulnerabilitySource) -> None:
        self.source = source

    def match_component(self, component: Component) -> list[Finding]:
        name = lookup_name(component)
        version = _lookup_version(component)
        findings: dict[str, Finding] = {}
        for record in self.source.candidates(component.ecosystem, name):
            if record.withdrawn is not None or record.id in findings:
                continue
            for entry in record.affected:
                if not affected(entry, component.ecosystem, name, version):
                    continue
                rating = sev.rate(record, entry)
                findings[record.id] = Finding(
                    id=record.id,
                    aliases=record.aliases,
                    severity=rating.severity,
                    score=rating.score,
                    package=component.name,
                    ecosystem=component.ecosystem,
                    version=component.version,
                    fixed_versions=fixed_versions(entry),
                    summary=record.summary or _first_line(record.details),
                    references=tuple(r.url for r in record.references),
                    component=component,
                )
                break
        return sorted(findings.values(), key=lambda f: f.id)

    def match(self, components: Sequence[Component]) -> list[Finding]:
        out: list[Finding] = []
        for component in components:
            out.extend(self.match_component(component))
        return out


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    line = text.strip().split("\n", 1)[0].strip()
    return line[:200] or None
