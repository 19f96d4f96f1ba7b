"""rpm: a real sqlite rpmdb holding RPM headers built by a tiny header writer."""

from __future__ import annotations

import sqlite3
import struct
import tempfile
from pathlib import Path

import pytest
from layerkit import file, inventory

from moorage.scanner.inventory.models import ParseError
from moorage.scanner.inventory.rpm import HEADER_MAGIC, parse_rpm_header

ALMA_9 = 'NAME="AlmaLinux"\nVERSION="9.3 (Shamrock Pampas Cat)"\nID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n'


def rpm_header(tags: dict[int, str | int | list[str]], with_magic: bool = False) -> bytes:
    """An RPM header blob: (il, dl), il 16-byte index entries, then the data store."""
    index, store = b"", b""
    # a region tag first, like rpm writes (HEADER_IMMUTABLE, BIN), which readers must step over
    index += struct.pack(">IIII", 63, 7, 0, 16)
    store += b"\x00" * 16
    for tag, value in sorted(tags.items()):
        if isinstance(value, int):
            store += b"\x00" * (-len(store) % 4)
            index += struct.pack(">IIII", tag, 4, len(store), 1)
            store += struct.pack(">i", value)
        elif isinstance(value, list):
            index += struct.pack(">IIII", tag, 8, len(store), len(value))
            store += b"".join(v.encode() + b"\x00" for v in value)
        else:
            index += struct.pack(">IIII", tag, 6, len(store), 1)
            store += value.encode() + b"\x00"
    blob = struct.pack(">II", len(index) // 16, len(store)) + index + store
    return (HEADER_MAGIC + blob) if with_magic else blob


def rpmdb(headers: list[bytes]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rpmdb.sqlite"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
        db.execute("CREATE TABLE Name (key TEXT NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL)")
        db.executemany("INSERT INTO Packages (blob) VALUES (?)", [(h,) for h in headers])
        db.commit()
        db.close()
        return path.read_bytes()


def package(name: str, version: str, release: str, source: str, epoch: int | None = None) -> bytes:
    tags: dict[int, str | int | list[str]] = {
        1000: name,
        1001: version,
        1002: release,
        1022: "x86_64",
        1044: source,
        1027: ["/usr/bin/" + name, "/usr/share/doc/" + name],
    }
    if epoch is not None:
        tags[1003] = epoch
    return rpm_header(tags)


def test_rpmdb_sqlite_in_an_almalinux_layer() -> None:
    db = rpmdb(
        [
            package("bash", "5.1.8", "6.el9_1", "bash-5.1.8-6.el9_1.src.rpm"),
            package("openssl-libs", "3.0.7", "24.el9", "openssl-3.0.7-24.el9.src.rpm", epoch=1),
            package("tzdata", "2023c", "1.el9", "tzdata-2023c-1.el9.src.rpm", epoch=0),
            rpm_header({1000: "gpg-pubkey", 1001: "b86b3716", 1002: "61e69f29"}),
            b"\x00\x00",
        ]
    )
    inv = inventory(
        [file("etc/os-release", ALMA_9), file("var/lib/rpm/rpmdb.sqlite", db)], digest="sha256:alma"
    )
    assert [(c.name, c.version, c.source_name, c.ecosystem, c.purl) for c in inv.components] == [
        ("bash", "5.1.8-6.el9_1", "bash", "AlmaLinux:9",
         "pkg:rpm/almalinux/bash@5.1.8-6.el9_1?arch=x86_64&distro=almalinux-9.3"),
        ("openssl-libs", "1:3.0.7-24.el9", "openssl", "AlmaLinux:9",
         "pkg:rpm/almalinux/openssl-libs@1:3.0.7-24.el9?arch=x86_64&distro=almalinux-9.3"),
        ("tzdata", "2023c-1.el9", "tzdata", "AlmaLinux:9",
         "pkg:rpm/almalinux/tzdata@2023c-1.el9?arch=x86_64&distro=almalinux-9.3"),
    ]  # fmt: skip
    assert inv.warnings == [
        "var/lib/rpm/rpmdb.sqlite: package 5: rpm header shorter than its preamble; skipped"
    ]


def test_header_with_its_magic_prefix() -> None:
    header = parse_rpm_header(rpm_header({1000: "zlib", 1001: "1.2.11", 1002: "40.el9"}, with_magic=True))
    assert (header.name, header.evr, header.source_name) == ("zlib", "1.2.11-40.el9", None)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (struct.pack(">II", 1, 1000) + b"\x00" * 20, "sizes out of range"),
        (struct.pack(">II", 1, 4) + struct.pack(">IIII", 1000, 6, 9, 1) + b"abcd", "outside the data store"),
        (struct.pack(">II", 1, 4) + struct.pack(">IIII", 1000, 6, 0, 1) + b"abcd", "unterminated string"),
        (rpm_header({1001: "1.0"}), "no NAME or VERSION"),
    ],
    ids=["sizes", "offset", "unterminated", "no-name"],
)
def test_malformed_headers_are_refused(blob: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_rpm_header(blob)


def test_unreadable_or_unsupported_rpm_databases_are_warnings() -> None:
    inv = inventory(
        [
            file("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\x00" + b"\x00" * 100),
            file("var/lib/rpm/Packages", b"\x00\x06\x15\x61" * 10),
        ]
    )
    assert inv.components == []
    assert inv.warnings[0] == (
        "var/lib/rpm/Packages: Berkeley DB / ndb rpm databases are not supported; packages not listed"
    )
    assert inv.warnings[1].startswith(
        "var/lib/rpm/rpmdb.sqlite: unparseable rpm database: not a readable rpm sqlite database:"
    )
