"""dpkg: ``var/lib/dpkg/status`` and the one-file-per-package ``var/lib/dpkg/status.d/`` of distroless."""

from __future__ import annotations

import re

from .distro import os_component
from .models import Distro, ParseError, ParseResult

__all__ = ["is_dpkg_db", "parse_dpkg", "parse_paragraphs"]

STATUS = "var/lib/dpkg/status"
STATUS_DIR = "var/lib/dpkg/status.d/"
_SOURCE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?\s*$")


def is_dpkg_db(path: str) -> bool:
    if path == STATUS:
        return True
    if path.startswith(STATUS_DIR):
        name = path[len(STATUS_DIR) :]
        return bool(name) and "/" not in name and not name.endswith(".md5sums")
    return False


def parse_paragraphs(text: str) -> list[dict[str, str]]:
    """RFC 822-style control paragraphs: ``Field: value`` lines, continuations start with a space."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, last = {}, None
            continue
        if line[0] in " \t":
            if last is None:
                raise ParseError(f"line {lineno}: continuation line outside a field")
            current[last] += "\n" + line.strip()
            continue
        if line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            raise ParseError(f"line {lineno}: not a 'Field: value' line: {line[:60]!r}")
        last = key.strip()
        current[last] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def parse_dpkg(data: bytes, path: str, layer: str, distro: Distro | None) -> ParseResult:
    """Installed packages of a dpkg status file (``Status: ... installed``; status.d entries need none)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text: {exc}") from exc
    paragraphs = parse_paragraphs(text)
    if text.strip() and not paragraphs:
        raise ParseError("no package paragraphs")
    result = ParseResult()
    needs_status = path == STATUS
    for index, fields in enumerate(paragraphs, 1):
        name = fields.get("Package", "")
        version = fields.get("Version", "")
        if not name or not version:
            result.warnings.append(f"{path}: paragraph {index} has no Package or Version; skipped")
            continue
        status = fields.get("Status")
        if status is not None:
            words = status.split()
            if len(words) != 3:
                result.warnings.append(f"{path}: {name}: malformed Status {status!r}; skipped")
                continue
            if words[2] != "installed":
                continue
        elif needs_status:
            result.warnings.append(f"{path}: {name}: no Status field; skipped")
            continue
        source_name: str | None = None
        source_version: str | None = version
        if "Source" in fields:
            match = _SOURCE.match(fields["Source"])
            if match is None:
                result.warnings.append(f"{path}: {name}: malformed Source {fields['Source']!r}; ignored")
            else:
                source_name = match.group(1)
                source_version = match.group(2) or version
        else:
            source_name = name
        result.components.append(
            os_component(
                "deb",
                name=name,
                version=version,
                arch=fields.get("Architecture"),
                source_name=source_name,
                source_version=source_version,
                layer=layer,
                path=path,
                distro=distro,
            )
        )
    return result
