"""apk (Alpine): ``lib/apk/db/installed``."""

from __future__ import annotations

from .distro import os_component
from .models import Distro, ParseError, ParseResult

__all__ = ["APK_DB", "parse_apk"]

APK_DB = "lib/apk/db/installed"


def parse_apk(data: bytes, path: str, layer: str, distro: Distro | None) -> ParseResult:
    """Packages of an apk database: ``P:`` name, ``V:`` version, ``A:`` arch, ``o:`` origin."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text: {exc}") from exc
    result = ParseResult()
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if current:
                records.append(current)
            current = {}
            continue
        if len(line) < 2 or line[1] != ":":
            raise ParseError(f"line {lineno}: not a 'K:value' line: {line[:60]!r}")
        # repeated keys (F:, R: file lists) are not needed; keep the first of each
        current.setdefault(line[0], line[2:])
    if current:
        records.append(current)
    for index, record in enumerate(records, 1):
        name, version = record.get("P", ""), record.get("V", "")
        if not name or not version:
            result.warnings.append(f"{path}: record {index} has no P: or V:; skipped")
            continue
        result.components.append(
            os_component(
                "apk",
                name=name,
                version=version,
                arch=record.get("A"),
                source_name=record.get("o") or name,
                source_version=version,
                layer=layer,
                path=path,
                distro=distro,
            )
        )
    return result
