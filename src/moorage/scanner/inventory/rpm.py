"""rpm: the sqlite ``rpmdb.sqlite`` (RHEL/AlmaLinux/Rocky 9+, Fedora): ``Packages`` rows of RPM headers."""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass

from .distro import os_component
from .models import Distro, ParseError, ParseResult

__all__ = ["RPM_SQLITE_PATHS", "RPM_UNSUPPORTED_PATHS", "RpmHeader", "parse_rpm_header", "parse_rpmdb_sqlite"]

RPM_SQLITE_PATHS = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
#: Berkeley DB and ndb databases of older or other distributions: recognised, not read
RPM_UNSUPPORTED_PATHS = (
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
)

HEADER_MAGIC = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"
TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH, TAG_SOURCERPM = 1000, 1001, 1002, 1003, 1022, 1044
TYPE_INT32, TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING = 4, 6, 8, 9
_WANTED = {TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH, TAG_SOURCERPM}
_MAX_INDEX = 0xFFFF
_MAX_DATA = 256 << 20


@dataclass(frozen=True)
class RpmHeader:
    name: str
    version: str
    release: str
    epoch: int | None
    arch: str | None
    sourcerpm: str | None

    @property
    def evr(self) -> str:
        """``[EPOCH:]VERSION-RELEASE``, the version OSV records use (epoch only when set and not 0)."""
        base = f"{self.version}-{self.release}" if self.release else self.version
        return f"{self.epoch}:{base}" if self.epoch else base

    @property
    def source_name(self) -> str | None:
        """``bash`` from ``bash-5.1.8-6.el9.src.rpm``."""
        if not self.sourcerpm:
            return None
        stem = self.sourcerpm
        for suffix in (".src.rpm", ".nosrc.rpm"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        parts = stem.rsplit("-", 2)
        return parts[0] if len(parts) == 3 and parts[0] else None


def parse_rpm_header(blob: bytes) -> RpmHeader:
    """Decode an RPM header blob (as stored in rpmdb: index count, data length, index, data store)."""
    if blob.startswith(HEADER_MAGIC):
        blob = blob[len(HEADER_MAGIC) :]
    if len(blob) < 8:
        raise ParseError("rpm header shorter than its preamble")
    il, dl = struct.unpack(">II", blob[:8])
    if il > _MAX_INDEX or dl > _MAX_DATA or 8 + 16 * il + dl > len(blob):
        raise ParseError(f"rpm header sizes out of range (index {il}, data {dl}, blob {len(blob)})")
    store_start = 8 + 16 * il
    store = blob[store_start : store_start + dl]
    values: dict[int, str | int] = {}
    for i in range(il):
        tag, typ, offset, count = struct.unpack(">IIII", blob[8 + 16 * i : 24 + 16 * i])
        if tag not in _WANTED:
            continue
        if offset >= dl:
            raise ParseError(f"rpm header tag {tag}: offset {offset} outside the data store")
        if typ in (TYPE_STRING, TYPE_I18NSTRING, TYPE_STRING_ARRAY):
            end = store.find(b"\x00", offset)
            if end < 0:
                raise ParseError(f"rpm header tag {tag}: unterminated string")
            values[tag] = store[offset:end].decode("utf-8", "replace")
        elif typ == TYPE_INT32 and count >= 1:
            if offset + 4 > dl:
                raise ParseError(f"rpm header tag {tag}: integer outside the data store")
            values[tag] = struct.unpack(">i", store[offset : offset + 4])[0]
        else:
            raise ParseError(f"rpm header tag {tag}: unexpected type {typ}")
    name, version = values.get(TAG_NAME), values.get(TAG_VERSION)
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise ParseError("rpm header has no NAME or VERSION")
    release = values.get(TAG_RELEASE)
    epoch = values.get(TAG_EPOCH)
    arch = values.get(TAG_ARCH)
    source = values.get(TAG_SOURCERPM)
    return RpmHeader(
        name=name,
        version=version,
        release=release if isinstance(release, str) else "",
        epoch=epoch if isinstance(epoch, int) else None,
        arch=arch if isinstance(arch, str) else None,
        sourcerpm=source if isinstance(source, str) else None,
    )


def parse_rpmdb_sqlite(data: bytes, path: str, layer: str, distro: Distro | None) -> ParseResult:
    """Packages of an ``rpmdb.sqlite`` held in memory (never written to disk)."""
    result = ParseResult()
    connection = sqlite3.connect(":memory:")
    try:
        try:
            connection.deserialize(data)
            rows = connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
        except sqlite3.Error as exc:
            raise ParseError(f"not a readable rpm sqlite database: {exc}") from exc
    finally:
        connection.close()
    for hnum, blob in rows:
        if not isinstance(blob, bytes):
            result.warnings.append(f"{path}: package {hnum}: header is not a blob; skipped")
            continue
        try:
            header = parse_rpm_header(blob)
        except ParseError as exc:
            result.warnings.append(f"{path}: package {hnum}: {exc}; skipped")
            continue
        if header.name == "gpg-pubkey":  # imported signing keys, not software
            continue
        source_name = header.source_name
        result.components.append(
            os_component(
                "rpm",
                name=header.name,
                version=header.evr,
                arch=header.arch,
                source_name=source_name,
                source_version=header.evr if source_name else None,
                layer=layer,
                path=path,
                distro=distro,
            )
        )
    return result
