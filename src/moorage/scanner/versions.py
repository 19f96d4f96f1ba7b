"""Per-ecosystem version ordering, on ``univers``.

``parse(ecosystem, text)`` returns an orderable version for the ecosystem's own rules, or
raises ``UnorderableVersion`` when the text is no version of that ecosystem (or the ecosystem
has no known order): the matcher then falls back to exact matches against a record's
``versions`` list. Ecosystems with releases (``Debian:11``, ``Alpine:v3.11``) order like their
base ecosystem.

Around univers' known gaps:
- Go: a ``v`` or ``go`` prefix is dropped, ``+incompatible`` is stripped, and Go toolchain
  versions (``go1.21``, ``go1.21rc2``) become semver (``1.21.0``, ``1.21.0-rc.2``).
- PyPI: only PEP 440 versions are ordered; anything else is unorderable (matched exactly).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from univers import versions as uv

__all__ = [
    "UnorderableVersion",
    "base_ecosystem",
    "compare",
    "normalize_name",
    "parse",
    "parse_semver",
]


class UnorderableVersion(ValueError):
    """The text is no version of the ecosystem, or the ecosystem has no known order."""


_ECOSYSTEM_CLASSES: dict[str, type[uv.Version]] = {
    "Debian": uv.DebianVersion,
    "Ubuntu": uv.DebianVersion,
    "Alpine": uv.AlpineLinuxVersion,
    "AlmaLinux": uv.RpmVersion,
    "Rocky Linux": uv.RpmVersion,
    "Red Hat": uv.RpmVersion,
    "openSUSE": uv.RpmVersion,
    "SUSE": uv.RpmVersion,
    "Mageia": uv.RpmVersion,
    "PyPI": uv.PypiVersion,
    "npm": uv.SemverVersion,
    "crates.io": uv.SemverVersion,
    "Go": uv.SemverVersion,
    "Maven": uv.MavenVersion,
    "NuGet": uv.NugetVersion,
    "RubyGems": uv.RubygemsVersion,
    "Packagist": uv.ComposerVersion,
}

_GO_TOOLCHAIN = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(alpha|beta|rc)(\d+))?$")


def base_ecosystem(ecosystem: str) -> str:
    """``Debian:11`` → ``Debian``; ``Ubuntu:Pro:14.04:LTS`` → ``Ubuntu``."""
    return ecosystem.split(":", 1)[0]


def normalize_name(ecosystem: str, name: str) -> str:
    """The name packages are looked up by: PEP 503 for PyPI, otherwise as written."""
    if base_ecosystem(ecosystem) == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def _go(text: str) -> str:
    text = text.strip()
    if text.startswith("go"):
        text = text[2:]
    elif text.startswith("v"):
        text = text[1:]
    text = text.removesuffix("+incompatible")
    toolchain = _GO_TOOLCHAIN.match(text)
    if toolchain:  # a Go toolchain version: go1.21, go1.21.5, go1.21rc2
        major, minor, patch, pre, num = toolchain.groups()
        core = f"{major}.{minor or 0}.{patch or 0}"
        return f"{core}-{pre}.{num}" if pre else core
    return text


@lru_cache(maxsize=65536)
def parse_semver(text: str) -> Any:
    """A SemVer 2.0 version (OSV ``SEMVER`` ranges), with a Go-style prefix tolerated."""
    if not text:
        raise UnorderableVersion(text)
    try:
        return uv.SemverVersion(_go(text))
    except (uv.InvalidVersion, ValueError, TypeError) as exc:
        raise UnorderableVersion(text) from exc


@lru_cache(maxsize=262144)
def _parse(base: str, text: str) -> Any:
    if base == "Go":
        return parse_semver(text)
    cls = _ECOSYSTEM_CLASSES.get(base)
    if cls is None or not text:
        raise UnorderableVersion(f"{base}: {text!r}")
    try:
        return cls(text)
    except (uv.InvalidVersion, ValueError, TypeError, AttributeError) as exc:
        raise UnorderableVersion(f"{base}: {text!r}") from exc


def parse(ecosystem: str, text: str) -> Any:
    """An orderable version of ``ecosystem`` (``<``, ``==`` between versions of one ecosystem)."""
    return _parse(base_ecosystem(ecosystem), text)


def compare(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b`` in the ecosystem's order."""
    va, vb = parse(ecosystem, a), parse(ecosystem, b)
    return -1 if va < vb else (1 if va > vb else 0)


def orderable(ecosystem: str) -> bool:
    return base_ecosystem(ecosystem) in _ECOSYSTEM_CLASSES
