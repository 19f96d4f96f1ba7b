"""Streaming reader for OCI image layers: decompression, tar walking, path safety and limits.

A layer is read exactly once, front to back, without seeking and without extracting anything to disk:
``open_layer`` detects the compression from the magic bytes, ``walk_layer`` walks the tar stream and
yields one ``LayerEntry`` per member with a normalised path. The content of the current entry can be
read (``LayerEntry.open`` / ``LayerEntry.read``) until the walk moves on to the next entry.

Whatever the input, a walk either finishes or raises ``LayerError`` with a message saying what is
wrong; unsafe members (``../`` escapes, links pointing out of the root) are skipped and recorded in
``LayerWalk.warnings``.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, cast

import zstandard
from isal import igzip, isal_zlib

#: What ISA-L raises on corrupt deflate data (its stubs declare an instance, not the class).
IsalError = cast("type[Exception]", isal_zlib.error)
#: What a corrupt or truncated compressed stream raises while it is read.
_STREAM_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error, IsalError, zstandard.ZstdError)
_TAR_ERRORS: tuple[type[Exception], ...] = (tarfile.TarError, *_STREAM_ERRORS)

__all__ = [
    "OPAQUE_MARKER",
    "WHITEOUT_PREFIX",
    "EntryKind",
    "FileTooLarge",
    "LayerEntry",
    "LayerError",
    "LayerWalk",
    "Limits",
    "normalise_path",
    "open_layer",
    "walk_layer",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 16
#: tarfile's stream mode skips unread file contents by reading them in blocks of this size; its
#: default (10 KiB) made skipping most of a layer cost one Python call per 10 KiB.
_TAR_BUFSIZE = 1 << 18

EntryKind = Literal["file", "dir", "symlink", "hardlink", "whiteout", "opaque", "other"]


@dataclass(frozen=True)
class Limits:
    """Bounds on what one layer may cost to read; exceeding one is a ``LayerError``."""

    #: total bytes of the decompressed tar stream (headers and contents)
    max_unpacked_bytes: int = 8 << 30
    #: number of tar members
    max_files: int = 2_000_000
    #: largest single file a parser may read into memory
    max_file_read: int = 64 << 20


class LayerError(Exception):
    """The layer cannot be read: corrupt or truncated, over a limit, or not a tar archive."""


class FileTooLarge(ValueError):
    """``LayerEntry.read`` was asked for a file larger than the caller's bound."""


@dataclass(frozen=True)
class LayerEntry:
    """One tar member, with its path normalised relative to the image root (no leading ``/`` or ``./``).

    For ``whiteout`` entries ``path`` is the path the whiteout removes from lower layers; for ``opaque``
    entries it is the directory whose lower-layer contents are hidden (``""`` for the root). For links
    ``link_target`` is the normalised path the link resolves to inside the image root.
    """

    path: str
    kind: EntryKind
    size: int = 0
    mode: int = 0
    link_target: str | None = None
    _opener: Callable[[], BinaryIO | None] | None = field(default=None, repr=False, compare=False)

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)

    def open(self) -> BinaryIO:
        """A stream over the content of a regular file; valid only until the walk moves on."""
        if self.kind != "file" or self._opener is None:
            raise ValueError(f"{self.path}: not a regular file")
        stream = self._opener()
        if stream is None:  # pragma: no cover - tarfile returns None only for non-files
            raise ValueError(f"{self.path}: no content")
        return stream

    def read(self, max_bytes: int) -> bytes:
        """The whole content of a regular file, refused (``FileTooLarge``) above ``max_bytes``."""
        if self.size > max_bytes:
            raise FileTooLarge(f"{self.path}: {self.size} bytes is over the {max_bytes} byte read limit")
        data = _guarded_read(self.open(), self.size)
        if len(data) != self.size:
            raise LayerError(f"truncated layer: {self.path} ends after {len(data)} of {self.size} bytes")
        return data


def _guarded_read(stream: BinaryIO, size: int) -> bytes:
    try:
        return stream.read(size)
    except LayerError:
        raise
    except _TAR_ERRORS as exc:
        raise LayerError(f"corrupt or truncated layer: {exc}") from exc


class _Prefixed(io.RawIOBase):
    """Replays bytes already read from a non-seekable stream, then continues with the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Counting(io.RawIOBase):
    """Counts decompressed bytes, turns decoder errors into ``LayerError`` and enforces the size limit."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        try:
            data = self._inner.read(len(view))
        except _STREAM_ERRORS as exc:
            raise LayerError(f"corrupt or truncated layer: {exc}") from exc
        self.count += len(data)
        if self.count > self._limit:
            raise LayerError(
                f"layer unpacks to more than {self._limit} bytes (limit max_unpacked_bytes): "
                "refusing a possible decompression bomb"
            )
        view[: len(data)] = data
        return len(data)


def open_layer(stream: BinaryIO) -> BinaryIO:
    """The decompressed tar stream of a layer: gzip, zstd or plain tar, detected by magic bytes.

    Streaming: nothing is read ahead beyond the magic bytes, and the input need not be seekable.
    """
    head = b""
    while len(head) < 4:
        more = stream.read(4 - len(head))
        if not more:
            break
        head += more
    if not head:
        raise LayerError("empty layer: no bytes to read")
    raw: BinaryIO = io.BufferedReader(_Prefixed(head, stream), _CHUNK)
    if head.startswith(_GZIP_MAGIC):
        # ISA-L's inflate (python-isal) is about 3x zlib's here: gzip layers are most of a first scan.
        return igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[no-untyped-call,return-value]
    if head.startswith(_ZSTD_MAGIC):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return reader
    return raw


def normalise_path(name: str) -> str | None:
    """``name`` relative to the image root, or ``None`` when it climbs out of it with ``..``.

    ``/a/./b``, ``./a/b`` and ``a//b/`` all give ``a/b``; the root itself is ``""``.
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _resolve_link(entry_path: str, target: str) -> str | None:
    """Where a link target points inside the root; ``None`` when it points out of it."""
    if target.startswith("/"):
        return normalise_path(target)
    return normalise_path(posixpath.join(posixpath.dirname(entry_path), target))


class LayerWalk(Iterator[LayerEntry]):
    """Iterator over the entries of one layer, collecting warnings about skipped members."""

    def __init__(self, stream: BinaryIO, limits: Limits) -> None:
        self.limits = limits
        self.warnings: list[str] = []
        self._counter = _Counting(open_layer(stream), limits.max_unpacked_bytes)
        self._buffered = io.BufferedReader(self._counter, _CHUNK)
        self._entries = self._generate()

    @property
    def unpacked_bytes(self) -> int:
        return self._counter.count

    def __iter__(self) -> LayerWalk:
        return self

    def __next__(self) -> LayerEntry:
        return next(self._entries)

    def _generate(self) -> Iterator[LayerEntry]:
        try:
            archive = tarfile.open(fileobj=self._buffered, mode="r|", bufsize=_TAR_BUFSIZE)  # noqa: SIM115 - closed by `with` below
        except LayerError:
            raise
        except _TAR_ERRORS as exc:
            raise LayerError(f"not a readable tar layer: {exc}") from exc
        count = 0
        declared = 0
        with archive:
            while True:
                try:
                    member = archive.next()
                except LayerError:
                    raise
                except _TAR_ERRORS as exc:
                    raise LayerError(f"corrupt or truncated tar in layer: {exc}") from exc
                if member is None:
                    break
                # members are only remembered to let extractfile work; the walk keeps none of them
                archive.members = []  # type: ignore[attr-defined]
                count += 1
                if count > self.limits.max_files:
                    raise LayerError(
                        f"layer has more than {self.limits.max_files} entries (limit max_files): "
                        "refusing a possible tar bomb"
                    )
                declared += max(member.size, 0)
                if declared > self.limits.max_unpacked_bytes:
                    raise LayerError(
                        f"layer declares more than {self.limits.max_unpacked_bytes} bytes of files "
                        "(limit max_unpacked_bytes): refusing a possible decompression bomb"
                    )
                entry = self._entry(archive, member)
                if entry is not None:
                    yield entry
            # read to the end so a corrupt or truncated compressed stream is noticed (checksums)
            try:
                while self._buffered.read(_CHUNK):
                    pass
            except LayerError:
                raise
            except _STREAM_ERRORS as exc:
                raise LayerError(f"corrupt or truncated layer: {exc}") from exc

    def _entry(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> LayerEntry | None:
        path = normalise_path(member.name)
        if path is None:
            self.warnings.append(f"skipped {member.name!r}: path escapes the layer root")
            return None
        directory, base = posixpath.split(path)
        if base == OPAQUE_MARKER:
            return LayerEntry(path=directory, kind="opaque", mode=member.mode)
        if base.startswith(WHITEOUT_PREFIX):
            removed = base[len(WHITEOUT_PREFIX) :]
            if not removed or removed in (".", "..") or "/" in removed:
                self.warnings.append(f"skipped {member.name!r}: malformed whiteout")
                return None
            return LayerEntry(path=posixpath.join(directory, removed), kind="whiteout", mode=member.mode)
        if member.issym() or member.islnk():
            if member.islnk():
                target = normalise_path(member.linkname)
            else:
                target = _resolve_link(path, member.linkname)
            if target is None:
                kind_name = "symlink" if member.issym() else "hard link"
                self.warnings.append(
                    f"skipped {kind_name} {path!r} -> {member.linkname!r}: target points out of the layer root"
                )
                return None
            return LayerEntry(
                path=path,
                kind="symlink" if member.issym() else "hardlink",
                mode=member.mode,
                link_target=target,
            )
        if member.isdir():
            return LayerEntry(path=path, kind="dir", mode=member.mode)
        if member.isreg():

            def opener(m: tarfile.TarInfo = member) -> BinaryIO | None:
                try:
                    return archive.extractfile(m)  # type: ignore[return-value]
                except (tarfile.TarError, OSError) as exc:
                    raise LayerError(f"cannot read {path!r} from layer: {exc}") from exc

            return LayerEntry(path=path, kind="file", size=member.size, mode=member.mode, _opener=opener)
        return LayerEntry(path=path, kind="other", mode=member.mode)


def walk_layer(stream: BinaryIO, limits: Limits) -> LayerWalk:
    """Walk a (compressed) layer stream once; see ``LayerWalk`` and ``LayerEntry``."""
    return LayerWalk(stream, limits)
