"""Builds small image layers (tar, tar.gz, tar.zst) in memory for the scanner tests."""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass

import zstandard

from moorage.scanner.inventory import LayerInventory, inventory_layer
from moorage.scanner.layers import Limits

DEBIAN_12_OS_RELEASE = (
    b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
    b'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
)


@dataclass
class Member:
    name: str
    data: bytes = b""
    kind: str = "file"  # file, dir, symlink, hardlink
    target: str = ""
    mode: int = 0o644


def file(name: str, data: bytes | str, mode: int = 0o644) -> Member:
    return Member(name, data.encode() if isinstance(data, str) else data, mode=mode)


def symlink(name: str, target: str) -> Member:
    return Member(name, kind="symlink", target=target, mode=0o777)


def directory(name: str) -> Member:
    return Member(name, kind="dir", mode=0o755)


def tar_bytes(members: list[Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.mode = member.mode
            if member.kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif member.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = member.target
                archive.addfile(info)
            elif member.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = member.target
                archive.addfile(info)
            else:
                info.size = len(member.data)
                archive.addfile(info, io.BytesIO(member.data))
    return buffer.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def layer(members: list[Member], compression: str = "gzip") -> bytes:
    return compress(tar_bytes(members), compression)


class OneWayStream(io.RawIOBase):
    """A non-seekable stream, like an HTTP response body or a blob being read from storage."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._inner.read(min(len(buffer), 1000))
        buffer[: len(data)] = data
        return len(data)


def inventory(
    members: list[Member], digest: str = "sha256:aa", limits: Limits | None = None
) -> LayerInventory:
    return inventory_layer(OneWayStream(layer(members)), digest, limits or Limits())  # type: ignore[arg-type]
