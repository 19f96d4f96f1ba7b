"""Java archives: ``META-INF/maven/<group>/<artifact>/pom.properties`` in jar/war/ear, nested ones too.

Archives are read in memory within a byte budget (``max_file_read``) shared by the archive and
everything nested in it, so a zip bomb cannot make the reader allocate more than that.
"""

from __future__ import annotations

import io
import re
import zipfile

from .models import Component, ParseError, ParseResult, make_purl

__all__ = ["JAVA_SUFFIXES", "is_java_archive", "parse_java_archive", "parse_properties"]

JAVA_SUFFIXES = (".jar", ".war", ".ear", ".par", ".sar", ".hpi", ".jpi")
_POM_PROPERTIES = re.compile(r"^META-INF/maven/[^/]+/[^/]+/pom\.properties$")
_MAX_DEPTH = 4


def is_java_archive(path: str) -> bool:
    return path.lower().endswith(JAVA_SUFFIXES)


def parse_properties(text: str) -> dict[str, str]:
    """Java ``.properties``: ``key=value`` / ``key: value`` / ``key value`` lines, ``#`` and ``!`` comments."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"^((?:\\.|[^=:\s\\])+)\s*[=:\s]\s*(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, size: int, what: str) -> None:
        if size > self.left:
            raise ParseError(f"{what}: unpacking it would exceed the {self.left} byte read budget")
        self.left -= size


def parse_java_archive(data: bytes, path: str, layer: str, max_bytes: int) -> ParseResult:
    result = ParseResult()
    seen: set[tuple[str, str, str]] = set()
    _walk(data, path, layer, _Budget(max_bytes), 0, result, seen)
    return result


def _walk(
    data: bytes,
    path: str,
    layer: str,
    budget: _Budget,
    depth: int,
    result: ParseResult,
    seen: set[tuple[str, str, str]],
) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        if depth == 0:
            raise ParseError(f"not a zip archive: {exc}") from exc
        result.warnings.append(f"{path}: not a zip archive ({exc}); skipped")
        return
    with archive:
        for info in archive.infolist():
            name = info.filename
            is_pom = _POM_PROPERTIES.match(name) is not None
            is_nested = is_java_archive(name) and not info.is_dir()
            if not is_pom and not is_nested:
                continue
            if is_nested and depth + 1 > _MAX_DEPTH:
                result.warnings.append(f"{path}!/{name}: nested deeper than {_MAX_DEPTH} archives; skipped")
                continue
            try:
                budget.take(info.file_size, f"{path}!/{name}")
                with archive.open(info) as member:
                    content = member.read(info.file_size + 1)
                if len(content) != info.file_size:
                    raise ParseError(f"{path}!/{name}: size differs from its directory entry")
            except ParseError as exc:
                result.warnings.append(f"{exc}; skipped")
                continue
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
                result.warnings.append(f"{path}!/{name}: unreadable ({exc}); skipped")
                continue
            if is_nested:
                _walk(content, f"{path}!/{name}", layer, budget, depth + 1, result, seen)
                continue
            properties = parse_properties(content.decode("utf-8", "replace"))
            group, artifact = properties.get("groupId", ""), properties.get("artifactId", "")
            version = properties.get("version", "")
            if not group or not artifact or not version:
                result.warnings.append(f"{path}!/{name}: no groupId, artifactId or version; skipped")
                continue
            key = (group, artifact, version)
            if key in seen:
                continue
            seen.add(key)
            result.components.append(
                Component(
                    name=f"{group}:{artifact}",
                    version=version,
                    ecosystem="Maven",
                    purl=make_purl("maven", artifact, version, group),
                    source_name=None,
                    layer=layer,
                    path=path,
                )
            )
