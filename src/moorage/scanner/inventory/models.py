"""Data of a package inventory: components, the distribution, one layer's inventory, an image's."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from packageurl import PackageURL

__all__ = [
    "OS_PURL_TYPES",
    "Component",
    "Distro",
    "ImageInventory",
    "LayerInventory",
    "ParseError",
    "ParseResult",
]

#: purl types of operating system packages, whose OSV ecosystem the distribution decides
OS_PURL_TYPES = frozenset({"deb", "apk", "rpm"})
_FORMAT = 1


class ParseError(ValueError):
    """A package database or metadata file that cannot be parsed at all."""


@dataclass(frozen=True)
class Component:
    """One installed package: its identity (OSV ecosystem, name, version, purl) and where it was found.

    ``layer`` is the digest of the layer that introduced it and ``path`` the file it was read from
    (``outer.war!/WEB-INF/lib/inner.jar`` inside archives). ``source_name`` / ``source_version`` are
    the source package of an OS package (dpkg ``Source:``, apk origin, rpm source rpm), else ``None``.
    """

    name: str
    version: str
    ecosystem: str
    purl: str
    source_name: str | None
    layer: str
    path: str
    source_version: str | None = None

    @property
    def purl_type(self) -> str:
        return self.purl[4:].split("/", 1)[0] if self.purl.startswith("pkg:") else ""

    @property
    def file_path(self) -> str:
        """The path in the image file system (an archive's own path for components inside it)."""
        return self.path.split("!/", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Component:
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            ecosystem=str(data["ecosystem"]),
            purl=str(data["purl"]),
            source_name=data.get("source_name"),
            layer=str(data["layer"]),
            path=str(data["path"]),
            source_version=data.get("source_version"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Component:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class Distro:
    """The distribution of an image, from ``etc/os-release`` or ``usr/lib/os-release``.

    ``ecosystem`` is the OSV ecosystem of its packages (``Debian:12``, ``Alpine:v3.19``,
    ``AlmaLinux:9``, ``Ubuntu:22.04:LTS``), or ``None`` for a distribution OSV does not cover.
    """

    id: str
    version_id: str
    ecosystem: str | None
    id_like: tuple[str, ...] = ()
    version_codename: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version_id": self.version_id,
            "ecosystem": self.ecosystem,
            "id_like": list(self.id_like),
            "version_codename": self.version_codename,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Distro:
        return cls(
            id=str(data["id"]),
            version_id=str(data["version_id"]),
            ecosystem=data.get("ecosystem"),
            id_like=tuple(data.get("id_like", ())),
            version_codename=str(data.get("version_codename", "")),
        )


@dataclass
class ParseResult:
    """What a parser found in one file: components, and warnings about what it had to skip."""

    components: list[Component] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class LayerInventory:
    """Everything one layer contributes, storable per layer digest (``to_json`` / ``from_json``).

    ``written_paths`` are the package sources this layer (re)writes, including ones that yield no
    component (a dpkg status rewritten empty): they hide the same paths of lower layers.
    ``removed_paths`` (whiteouts) and ``opaque_dirs`` are what the layer deletes from lower layers.
    """

    digest: str
    components: list[Component] = field(default_factory=list)
    distro: Distro | None = None
    removed_paths: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)
    written_paths: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "digest": self.digest,
            "components": [c.to_dict() for c in self.components],
            "distro": self.distro.to_dict() if self.distro else None,
            "removed_paths": list(self.removed_paths),
            "opaque_dirs": list(self.opaque_dirs),
            "written_paths": list(self.written_paths),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerInventory:
        if data.get("format") != _FORMAT:
            raise ValueError(f"unsupported layer inventory format {data.get('format')!r}")
        distro = data.get("distro")
        return cls(
            digest=str(data["digest"]),
            components=[Component.from_dict(c) for c in data.get("components", [])],
            distro=Distro.from_dict(distro) if distro else None,
            removed_paths=[str(p) for p in data.get("removed_paths", [])],
            opaque_dirs=[str(p) for p in data.get("opaque_dirs", [])],
            written_paths=[str(p) for p in data.get("written_paths", [])],
            warnings=[str(w) for w in data.get("warnings", [])],
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> LayerInventory:
        return cls.from_dict(json.loads(text))


@dataclass
class ImageInventory:
    """The packages of an image after applying its layers in order."""

    components: list[Component]
    distro: Distro | None
    layers: list[str]
    warnings: list[str] = field(default_factory=list)


def make_purl(
    type: str,
    name: str,
    version: str | None,
    namespace: str | None = None,
    qualifiers: dict[str, str] | None = None,
) -> str:
    purl = PackageURL(
        type=type,
        namespace=namespace or None,
        name=name,
        version=version or None,
        qualifiers={k: v for k, v in (qualifiers or {}).items() if v} or None,
    )
    return str(purl.to_string())
