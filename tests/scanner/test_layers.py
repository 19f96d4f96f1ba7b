"""The layer reader: compression detection, path normalisation, whiteouts, limits and bad input."""

from __future__ import annotations

import contextlib
import gzip
import io
import posixpath
import tarfile

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.scanner.layers import (
    FileTooLarge,
    LayerEntry,
    LayerError,
    Limits,
    normalise_path,
    open_layer,
    walk_layer,
)


def tar_of(*members: tuple[str, str, bytes | str]) -> bytes:
    """(type, name, data-or-link-target) members: type is f (file), d (dir), l (symlink), h (hard link)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            data = payload.encode() if isinstance(payload, str) else payload
            if kind == "d":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif kind in "lh":
                info.type = tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE
                info.linkname = data.decode()
                archive.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o755 if name.endswith("bin/tool") else 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class OneWay(io.RawIOBase):
    """Not seekable, and returns short reads."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._inner.read(min(len(buffer), 777))
        buffer[: len(data)] = data
        return len(data)


def walk(
    data: bytes, limits: Limits | None = None
) -> tuple[list[tuple[str, str, bytes | str | None]], list[str]]:
    walker = walk_layer(OneWay(data), limits or Limits())  # type: ignore[arg-type]
    out: list[tuple[str, str, bytes | str | None]] = []
    for entry in walker:
        payload: bytes | str | None = entry.read(1 << 20) if entry.kind == "file" else entry.link_target
        out.append((entry.kind, entry.path, payload))
    return out, walker.warnings


SAMPLE = tar_of(
    ("d", "./", b""),
    ("d", "./etc", b""),
    ("f", "./etc/os-release", "ID=debian\nVERSION_ID=12\n"),
    ("f", "/usr/bin/tool", b"\x7fELF..."),
    ("l", "etc/alternatives/tool", "/usr/bin/tool"),
    ("l", "usr/lib/os-release-link", "../../etc/os-release"),
    ("h", "usr/bin/tool2", "usr/bin/tool"),
    ("f", "a//b/./c", "x"),
)
SAMPLE_EXPECTED = [
    ("dir", "", None),
    ("dir", "etc", None),
    ("file", "etc/os-release", b"ID=debian\nVERSION_ID=12\n"),
    ("file", "usr/bin/tool", b"\x7fELF..."),
    ("symlink", "etc/alternatives/tool", "usr/bin/tool"),
    ("symlink", "usr/lib/os-release-link", "etc/os-release"),
    ("hardlink", "usr/bin/tool2", "usr/bin/tool"),
    ("file", "a/b/c", b"x"),
]


@pytest.mark.parametrize(
    "compress",
    [lambda d: d, gzip.compress, lambda d: zstandard.ZstdCompressor().compress(d)],
    ids=["plain", "gzip", "zstd"],
)
def test_every_compression_gives_the_same_normalised_entries(compress) -> None:  # type: ignore[no-untyped-def]
    entries, warnings = walk(compress(SAMPLE))
    assert entries == SAMPLE_EXPECTED
    assert warnings == []


def test_zstd_with_several_frames_is_read_across_frames() -> None:
    half = len(SAMPLE) // 2
    compressor = zstandard.ZstdCompressor()
    entries, _ = walk(compressor.compress(SAMPLE[:half]) + compressor.compress(SAMPLE[half:]))
    assert entries == SAMPLE_EXPECTED


def test_open_layer_streams_gzip_without_seeking() -> None:
    stream = open_layer(OneWay(gzip.compress(b"hello" * 1000)))  # type: ignore[arg-type]
    assert stream.read(10) == b"hellohello"


def test_whiteouts_and_opaque_directories_are_entries() -> None:
    data = tar_of(
        ("f", "usr/lib/python3/dist-packages/.wh.six-1.16.0.dist-info", b""),
        ("f", "./var/lib/.wh.apt", b""),
        ("f", "app/node_modules/.wh..wh..opq", b""),
        ("f", ".wh..wh..opq", b""),
        ("f", ".wh.etc", b""),
    )
    entries, warnings = walk(data)
    assert entries == [
        ("whiteout", "usr/lib/python3/dist-packages/six-1.16.0.dist-info", None),
        ("whiteout", "var/lib/apt", None),
        ("opaque", "app/node_modules", None),
        ("opaque", "", None),
        ("whiteout", "etc", None),
    ]
    assert warnings == []


def test_unsafe_members_are_skipped_with_warnings() -> None:
    data = tar_of(
        ("f", "../../etc/passwd", "root::0:0"),
        ("f", "usr/../../outside", "x"),
        ("l", "etc/evil", "/../../../etc/shadow"),
        ("l", "usr/lib/up", "../../../../root"),
        ("h", "usr/lib/hard", "../etc/shadow"),
        ("f", "ok", "fine"),
        ("f", "dir/.wh...", b""),
    )
    entries, warnings = walk(data)
    assert entries == [("file", "ok", b"fine")]
    assert warnings == [
        "skipped '../../etc/passwd': path escapes the layer root",
        "skipped 'usr/../../outside': path escapes the layer root",
        "skipped symlink 'etc/evil' -> '/../../../etc/shadow': target points out of the layer root",
        "skipped symlink 'usr/lib/up' -> '../../../../root': target points out of the layer root",
        "skipped hard link 'usr/lib/hard' -> '../etc/shadow': target points out of the layer root",
        "skipped 'dir/.wh...': malformed whiteout",
    ]


def test_corrupt_gzip_is_a_layer_error() -> None:
    data = bytearray(gzip.compress(SAMPLE))
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    with pytest.raises(LayerError, match="corrupt or truncated"):
        walk(bytes(data))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_damaged_gzip_layer_is_a_layer_error_or_reads(data: st.DataObject) -> None:
    """Layers are inflated by ISA-L (python-isal): whatever bytes are damaged, the walk either
    reads or fails with a LayerError, never with another exception."""
    blob = bytearray(gzip.compress(SAMPLE + tar_of(("f", "big", bytes(range(256)) * 200))))
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(1, len(blob)))
    with contextlib.suppress(LayerError):
        walk(bytes(blob[:cut]))


def test_gzip_with_a_bad_checksum_is_a_layer_error() -> None:
    data = bytearray(gzip.compress(SAMPLE))
    data[-6] ^= 0xFF  # CRC32 of the trailer
    with pytest.raises(LayerError, match="CRC check failed"):
        walk(bytes(data))


def test_truncated_gzip_is_a_layer_error() -> None:
    data = gzip.compress(SAMPLE + tar_of(("f", "big", b"z" * 50_000)))
    with pytest.raises(LayerError, match="corrupt or truncated"):
        walk(data[: len(data) // 2])


def test_truncated_zstd_is_a_layer_error() -> None:
    data = zstandard.ZstdCompressor().compress(tar_of(("f", "big", bytes(range(256)) * 400)))
    with pytest.raises(LayerError):
        walk(data[: len(data) - 20])


def test_truncated_tar_inside_a_file_is_a_layer_error() -> None:
    data = tar_of(("f", "etc/a", b"a" * 5000), ("f", "etc/b", b"b" * 5000))
    with pytest.raises(LayerError, match="truncated"):
        walk(data[:7000])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty layer"),
        (b"this is not a tar file at all" * 40, "corrupt or truncated tar|not a readable tar"),
        (b"\x1f\x8bnot really gzip", "corrupt or truncated"),
        (b"\x28\xb5\x2f\xfdnot really zstd", "corrupt or truncated"),
    ],
    ids=["empty", "garbage", "fake-gzip", "fake-zstd"],
)
def test_not_a_layer_is_a_layer_error(data: bytes, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        walk(data)


def test_decompression_bomb_stops_at_the_unpacked_size_limit() -> None:
    # 64 MiB of zeros, about 64 KiB compressed: refused after reading little more than the limit
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w|") as archive:
        info = tarfile.TarInfo("zeros")
        info.size = 64 << 20
        archive.addfile(info, io.BytesIO(bytes(64 << 20)))
    assert len(bomb.getvalue()) < 200_000
    with pytest.raises(LayerError, match="max_unpacked_bytes"):
        walk(bomb.getvalue(), Limits(max_unpacked_bytes=1 << 20))


def test_a_stream_of_headers_is_stopped_by_the_unpacked_size_limit_too() -> None:
    data = gzip.compress(tar_of(*[("f", f"f{i}", b"") for i in range(3000)]))
    with pytest.raises(LayerError, match="max_unpacked_bytes"):
        walk(data, Limits(max_unpacked_bytes=512 * 1000))


def test_too_many_files_is_a_layer_error() -> None:
    data = tar_of(*[("f", f"f{i}", b"") for i in range(20)])
    with pytest.raises(LayerError, match="max_files"):
        walk(data, Limits(max_files=10))
    entries, _ = walk(data, Limits(max_files=20))
    assert [path for _, path, _ in entries] == [f"f{i}" for i in range(20)]


def test_reading_is_bounded_by_the_callers_limit() -> None:
    walker = walk_layer(io.BytesIO(tar_of(("f", "big", b"x" * 100))), Limits())
    entry = next(walker)
    with pytest.raises(FileTooLarge, match="100 bytes is over the 99 byte read limit"):
        entry.read(99)
    assert entry.read(100) == b"x" * 100


def test_only_regular_files_can_be_opened() -> None:
    with pytest.raises(ValueError, match="not a regular file"):
        LayerEntry(path="etc", kind="dir").open()


SEGMENT = st.text(alphabet="ab.-_ ", min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))
NAMES = st.lists(st.one_of(SEGMENT, st.sampled_from([".", "..", ""])), max_size=8).map("/".join)


@given(name=NAMES, absolute=st.booleans())
def test_normalised_paths_never_escape_and_agree_with_normpath(name: str, absolute: bool) -> None:
    full = ("/" if absolute else "") + name
    result = normalise_path(full)
    depth, escapes = 0, False
    for part in full.split("/"):
        if part == "..":
            depth -= 1
            escapes = escapes or depth < 0
        elif part not in ("", "."):
            depth += 1
    if escapes:
        assert result is None
    else:
        assert result is not None
        assert result == posixpath.normpath("/" + full).lstrip("/")
        assert not result.startswith("/")
        assert all(part not in ("", ".", "..") for part in result.split("/")) or result == ""


@given(
    directory=st.lists(SEGMENT.filter(lambda s: not s.startswith(".wh.")), max_size=3).map("/".join),
    removed=SEGMENT.filter(lambda s: not s.startswith(".wh.") and s != "."),
    prefix=st.sampled_from(["", "./", "/"]),
)
def test_whiteout_entries_name_the_removed_path(directory: str, removed: str, prefix: str) -> None:
    base = f"{directory}/" if directory else ""
    entries, warnings = walk(
        tar_of(("f", f"{prefix}{base}.wh.{removed}", b""), ("f", f"{prefix}{base}.wh..wh..opq", b""))
    )
    assert entries == [("whiteout", f"{base}{removed}", None), ("opaque", directory, None)]
    assert warnings == []
