"""Package inventories of image layers, one pass per layer, merged across layers with whiteouts applied.

``inventory_layer`` reads one layer stream once and keeps only what the parsers want (package
databases, metadata files, archives, ELF executables); its ``LayerInventory`` is stored per layer
digest so that re-matching after a vulnerability database update never reads a layer again.
``merge_layers`` applies the layers in order: whiteouts and opaque directories delete what lower
layers installed, a package source rewritten higher up replaces the lower one, and the image's
distribution decides the OSV ecosystem of its OS packages.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from typing import BinaryIO

from ..layers import FileTooLarge, LayerEntry, LayerError, Limits, walk_layer
from .apk import APK_DB, parse_apk
from .distro import OS_RELEASE_PATHS, parse_os_release, rebase
from .dpkg import is_dpkg_db, parse_dpkg
from .golang import ELF_MAGIC, parse_go_binary
from .java import is_java_archive, parse_java_archive
from .models import (
    OS_PURL_TYPES,
    Component,
    Distro,
    ImageInventory,
    LayerInventory,
    ParseError,
    ParseResult,
)
from .npm import is_npm_package, parse_package_json
from .python import is_python_metadata, parse_python_metadata
from .rpm import RPM_SQLITE_PATHS, RPM_UNSUPPORTED_PATHS, parse_rpmdb_sqlite

__all__ = [
    "Component",
    "Distro",
    "ImageInventory",
    "LayerInventory",
    "inventory_layer",
    "merge_layers",
]

_SPOOL_IN_MEMORY = 4 << 20
_OS_DB = "os"


def _classify(path: str) -> str | None:
    """Which parser wants a file, by its path alone (ELF binaries are recognised by content)."""
    if path in OS_RELEASE_PATHS:
        return "os-release"
    if is_dpkg_db(path):
        return "dpkg"
    if path == APK_DB:
        return "apk"
    if path in RPM_SQLITE_PATHS:
        return "rpm"
    if path in RPM_UNSUPPORTED_PATHS:
        return "rpm-unsupported"
    if is_python_metadata(path):
        return "python"
    if is_npm_package(path):
        return "npm"
    if is_java_archive(path):
        return "java"
    return None


class _LayerReader:
    def __init__(self, digest: str, limits: Limits) -> None:
        self.digest = digest
        self.limits = limits
        self.inventory = LayerInventory(digest=digest)
        self.os_releases: dict[str, Distro] = {}
        self.os_sources: list[tuple[str, str, bytes]] = []  # OS package dbs wait for os-release

    def warn(self, message: str) -> None:
        self.inventory.warnings.append(message)

    def take(self, result: ParseResult) -> None:
        self.inventory.components.extend(result.components)
        self.inventory.warnings.extend(result.warnings)

    def entry(self, entry: LayerEntry) -> None:
        inv = self.inventory
        if entry.kind == "whiteout":
            inv.removed_paths.append(entry.path)
            return
        if entry.kind == "opaque":
            inv.opaque_dirs.append(entry.path)
            return
        if entry.kind == "dir":
            return
        kind = _classify(entry.path)
        go_candidate = entry.kind == "file" and entry.executable and kind is None
        if kind is None and not go_candidate:
            return
        inv.written_paths.append(entry.path)
        if entry.kind != "file":
            return  # a link or device over a package source hides the lower one; nothing to read
        if go_candidate:
            self.go_binary(entry)
            return
        assert kind is not None
        if kind == "rpm-unsupported":
            self.warn(f"{entry.path}: Berkeley DB / ndb rpm databases are not supported; packages not listed")
            return
        try:
            data = entry.read(self.limits.max_file_read)
        except FileTooLarge as exc:
            self.warn(f"{exc}; skipped")
            return
        try:
            if kind == "os-release":
                self.os_releases[entry.path] = parse_os_release(data)
            elif kind in ("dpkg", "apk", "rpm"):
                self.os_sources.append((kind, entry.path, data))
            elif kind == "python":
                self.take(parse_python_metadata(data, entry.path, self.digest))
            elif kind == "npm":
                self.take(parse_package_json(data, entry.path, self.digest))
            elif kind == "java":
                self.take(parse_java_archive(data, entry.path, self.digest, self.limits.max_file_read))
        except ParseError as exc:
            self.warn(f"{entry.path}: unparseable {kind} data: {exc}; skipped")

    def go_binary(self, entry: LayerEntry) -> None:
        stream = entry.open()
        head = stream.read(4)
        if head != ELF_MAGIC:
            return
        if entry.size > self.limits.max_file_read:
            self.warn(
                f"{entry.path}: ELF file of {entry.size} bytes is over the "
                f"{self.limits.max_file_read} byte read limit; not checked for Go build info"
            )
            return
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            spool.write(head)
            try:
                shutil.copyfileobj(stream, spool, 1 << 16)
            except LayerError:
                raise
            except (OSError, EOFError) as exc:
                raise LayerError(f"corrupt or truncated layer reading {entry.path!r}: {exc}") from exc
            if spool.tell() != entry.size:
                raise LayerError(f"truncated layer: {entry.path} ends early")
            try:
                self.take(parse_go_binary(spool, entry.path, self.digest))  # type: ignore[arg-type]
            except ParseError as exc:
                self.warn(f"{entry.path}: unparseable Go build info: {exc}; skipped")

    def finish(self) -> LayerInventory:
        inv = self.inventory
        for path in OS_RELEASE_PATHS:
            if path in self.os_releases:
                inv.distro = self.os_releases[path]
                break
        parsers = {"dpkg": parse_dpkg, "apk": parse_apk, "rpm": parse_rpmdb_sqlite}
        for kind, path, data in self.os_sources:
            try:
                self.take(parsers[kind](data, path, self.digest, inv.distro))
            except ParseError as exc:
                self.warn(f"{path}: unparseable {kind} database: {exc}; skipped")
        self.os_sources.clear()
        return inv


def inventory_layer(stream: BinaryIO, layer_digest: str, limits: Limits) -> LayerInventory:
    """Read one layer (gzip, zstd or plain tar) once and list what it installs and deletes.

    Raises ``LayerError`` for a layer that cannot be read (corrupt, truncated, over a limit);
    unparseable package data and unsafe members only add warnings.
    """
    reader = _LayerReader(layer_digest, limits)
    walk = walk_layer(stream, limits)
    for entry in walk:
        reader.entry(entry)
    inventory = reader.finish()
    inventory.warnings[:0] = walk.warnings
    return inventory


def _under(path: str, directory: str) -> bool:
    return directory == "" or path == directory or path.startswith(directory + "/")


def _os_key(component: Component) -> tuple[str, str, str]:
    return (component.purl_type, component.name, component.version)


def merge_layers(layers: Iterable[LayerInventory]) -> ImageInventory:
    """The image's packages: its layers applied bottom to top (see the module documentation).

    A component keeps the digest of the layer that introduced it, even when a higher layer rewrites
    the file it came from with the same package still in it.
    """
    by_path: dict[str, list[Component]] = {}
    distro: Distro | None = None
    digests: list[str] = []
    warnings: list[str] = []
    for layer in layers:
        digests.append(layer.digest)
        warnings.extend(f"{layer.digest}: {w}" for w in layer.warnings)
        for directory in layer.opaque_dirs:
            for path in [p for p in by_path if _under(p, directory) and p != directory]:
                del by_path[path]
        for removed in layer.removed_paths:
            for path in [p for p in by_path if _under(p, removed)]:
                del by_path[path]
        replaced: dict[str, list[Component]] = {}
        for path in layer.written_paths:
            if path in by_path:
                replaced[path] = by_path.pop(path)
        for path in {c.file_path for c in layer.components} - set(layer.written_paths):
            if path in by_path:
                replaced[path] = by_path.pop(path)
        for component in layer.components:
            earlier = {
                (c.path, c.name, c.version): c.layer for c in replaced.get(component.file_path, ())
            }.get((component.path, component.name, component.version))
            if earlier is not None:
                component = replace(component, layer=earlier)
            by_path.setdefault(component.file_path, []).append(component)
        if layer.distro is not None:
            distro = layer.distro
    if distro is None and any(c.purl_type in OS_PURL_TYPES for cs in by_path.values() for c in cs):
        warnings.append("no os-release in the image: OS packages have no versioned ecosystem")
    components: list[Component] = []
    seen_os: set[tuple[str, str, str]] = set()
    seen: set[tuple[str, str, str, str]] = set()
    for path in sorted(by_path):
        for component in by_path[path]:
            if component.purl_type in OS_PURL_TYPES:
                component = rebase(component, distro)
                if _os_key(component) in seen_os:
                    continue
                seen_os.add(_os_key(component))
            else:
                key = (component.ecosystem, component.name, component.version, component.path)
                if key in seen:
                    continue
                seen.add(key)
            components.append(component)
    components.sort(key=lambda c: (c.ecosystem, c.name, c.version, c.path))
    return ImageInventory(components=components, distro=distro, layers=digests, warnings=warnings)
