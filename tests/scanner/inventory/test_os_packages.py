"""dpkg, apk and os-release parsers, on this machine's real dpkg database and real-format apk data."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from layerkit import DEBIAN_12_OS_RELEASE, file, inventory, symlink

from moorage.scanner.inventory.apk import parse_apk
from moorage.scanner.inventory.distro import parse_os_release
from moorage.scanner.inventory.dpkg import parse_dpkg
from moorage.scanner.inventory.models import Component, Distro, ParseError

REAL_STATUS = Path("/var/lib/dpkg/status")
DEBIAN_12 = parse_os_release(DEBIAN_12_OS_RELEASE)

APK_INSTALLED = """C:Q1Ae+s2fGqg1zKmZHrxrkNmL6sULw=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1701279345
c:3e60db12c3e7bb4f11a9b6e1e1b4de95f2c4ac27
F:lib
R:ld-musl-x86_64.so.1

C:Q1/SiJjY1Kr5cTYWXfh3NAaf4m52A=
P:libcrypto3
V:3.1.4-r5
A:x86_64
o:openssl
m:Ariadne Conaway <ariadne@dereferenced.org>
F:lib
R:libcrypto.so.3

C:Q1lxbhuJtJqQzICzl9HzfFXMUvYVc=
P:ssl_client
V:1.36.1-r15
A:x86_64
o:busybox
"""


@pytest.fixture(scope="module")
def real_status() -> bytes:
    if not REAL_STATUS.is_file():
        pytest.skip("this machine has no /var/lib/dpkg/status (not Debian-based)")
    return REAL_STATUS.read_bytes()


def by_name(components: list[Component]) -> dict[str, Component]:
    return {c.name: c for c in components}


def test_real_dpkg_status_in_a_layer(real_status: bytes) -> None:
    inv = inventory(
        [
            file("var/lib/dpkg/status", real_status),
            symlink("etc/os-release", "../usr/lib/os-release"),
            file("usr/lib/os-release", DEBIAN_12_OS_RELEASE),
        ],
        digest="sha256:base",
    )
    assert inv.distro == Distro(
        id="debian", version_id="12", ecosystem="Debian:12", version_codename="bookworm"
    )
    packages = by_name(inv.components)
    libc = packages["libc6"]
    assert (libc.ecosystem, libc.source_name, libc.layer, libc.path) == (
        "Debian:12",
        "glibc",
        "sha256:base",
        "var/lib/dpkg/status",
    )
    assert libc.version.startswith("2.36-9+deb12u")
    assert libc.source_version == libc.version
    assert libc.purl == f"pkg:deb/debian/libc6@{libc.version.replace('+', '%2B')}?arch=amd64&distro=debian-12"
    bash = packages["bash"]  # binNMU: Source: bash (5.2.15-2), Version: 5.2.15-2+b8
    assert (bash.source_name, bash.source_version) == ("bash", "5.2.15-2")
    assert bash.version.startswith("5.2.15-2+b")
    assert packages["bsdutils"].source_name == "util-linux"
    assert packages["dpkg"].source_name == "dpkg"
    assert inv.warnings == []
    assert inv.written_paths == ["var/lib/dpkg/status", "etc/os-release", "usr/lib/os-release"]


STATUS_D_BASE_FILES = """Package: base-files
Version: 12.4+deb12u5
Architecture: amd64
Maintainer: Santiago Vila <sanvila@debian.org>
Installed-Size: 189
Section: admin
Priority: required
Description: Debian base system miscellaneous files
"""
STATUS_D_TZDATA = """Package: tzdata
Version: 2024a-0+deb12u1
Architecture: all
Source: tzdata
Description: time zone and daylight-saving time data
"""


def test_distroless_status_d() -> None:
    inv = inventory(
        [
            file("etc/os-release", DEBIAN_12_OS_RELEASE),
            file("var/lib/dpkg/status.d/base-files", STATUS_D_BASE_FILES),
            file("var/lib/dpkg/status.d/base-files.md5sums", "d41d8cd98f00b204e9800998ecf8427e  etc/issue\n"),
            file("var/lib/dpkg/status.d/tzdata", STATUS_D_TZDATA),
        ]
    )
    assert [(c.name, c.version, c.source_name, c.path, c.purl) for c in inv.components] == [
        (
            "base-files",
            "12.4+deb12u5",
            "base-files",
            "var/lib/dpkg/status.d/base-files",
            "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12",
        ),
        (
            "tzdata",
            "2024a-0+deb12u1",
            "tzdata",
            "var/lib/dpkg/status.d/tzdata",
            "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12",
        ),
    ]


def test_dpkg_skips_packages_not_installed_and_warns_about_broken_paragraphs() -> None:
    status = (
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
        "Package: half\nStatus: install ok half-configured\nVersion: 1.0\n\n"
        "Package: noversion\nStatus: install ok installed\n\n"
        "Package: nostatus\nVersion: 2\n\n"
        "Package: curl\nStatus: install ok installed\nVersion: 7.88.1-10+deb12u5\nSource: curl\n"
    )
    result = parse_dpkg(status.encode(), "var/lib/dpkg/status", "sha256:l", DEBIAN_12)
    assert [(c.name, c.version) for c in result.components] == [("curl", "7.88.1-10+deb12u5")]
    assert result.warnings == [
        "var/lib/dpkg/status: paragraph 3 has no Package or Version; skipped",
        "var/lib/dpkg/status: nostatus: no Status field; skipped",
    ]


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe\x00garbage", b"this is not\na status file", b" continuation first\n"],
    ids=["binary", "no-fields", "continuation"],
)
def test_unparseable_dpkg_status_is_a_warning_in_the_layer(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_dpkg(data, "var/lib/dpkg/status", "sha256:l", None)
    inv = inventory([file("var/lib/dpkg/status", data)])
    assert inv.components == []
    assert len(inv.warnings) == 1
    assert inv.warnings[0].startswith("var/lib/dpkg/status: unparseable dpkg database: ")


def test_apk_database() -> None:
    inv = inventory(
        [
            file("etc/os-release", 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n'),
            file("lib/apk/db/installed", APK_INSTALLED),
        ]
    )
    assert inv.distro is not None
    assert inv.distro.ecosystem == "Alpine:v3.19"
    assert [(c.name, c.version, c.source_name, c.ecosystem, c.purl) for c in inv.components] == [
        ("musl", "1.2.4_git20230717-r4", "musl", "Alpine:v3.19",
         "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"),
        ("libcrypto3", "3.1.4-r5", "openssl", "Alpine:v3.19",
         "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1"),
        ("ssl_client", "1.36.1-r15", "busybox", "Alpine:v3.19",
         "pkg:apk/alpine/ssl_client@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1"),
    ]  # fmt: skip


def test_unparseable_apk_database_is_a_warning() -> None:
    inv = inventory([file("lib/apk/db/installed", "P:ok\nthis line is not apk\n")])
    assert inv.components == []
    assert inv.warnings == ["lib/apk/db/installed: unparseable apk database: line 2: not a 'K:value' line: "
                            "'this line is not apk'; skipped"]  # fmt: skip


@pytest.mark.parametrize(
    ("os_release", "ecosystem"),
    [
        (b'ID=debian\nVERSION_ID="11"\n', "Debian:11"),
        (b'ID=ubuntu\nVERSION_ID="22.04"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\n', "Ubuntu:22.04:LTS"),
        (b'ID=ubuntu\nVERSION_ID="23.10"\nVERSION="23.10 (Mantic Minotaur)"\n', "Ubuntu:23.10"),
        (b'ID="almalinux"\nVERSION_ID="9.3"\nID_LIKE="rhel centos fedora"\n', "AlmaLinux:9"),
        (b'ID="rocky"\nVERSION_ID="8.9"\n', "Rocky Linux:8"),
        (b"ID=alpine\nVERSION_ID=3.20.0_alpha20240315\n", "Alpine:v3.20"),
        (b'ID=debian\nPRETTY_NAME="Debian GNU/Linux trixie/sid"\n', "Debian"),
        (b"ID=arch\n", None),
    ],
)
def test_os_release_selects_the_osv_ecosystem(os_release: bytes, ecosystem: str | None) -> None:
    assert parse_os_release(os_release).ecosystem == ecosystem


def test_os_release_without_id_is_a_warning() -> None:
    inv = inventory([file("etc/os-release", "NAME=nothing\n")])
    assert inv.distro is None
    assert inv.warnings == ["etc/os-release: unparseable os-release data: os-release has no ID; skipped"]


NAME = st.from_regex(r"[a-z0-9][a-z0-9+.-]{0,20}", fullmatch=True)
VERSION = st.from_regex(r"([1-9]:)?[0-9][A-Za-z0-9.+~]{0,10}(-[A-Za-z0-9.+~]{1,8})?", fullmatch=True)
PACKAGES = st.dictionaries(NAME, st.tuples(VERSION, st.booleans(), st.one_of(st.none(), NAME)), max_size=8)


@given(packages=PACKAGES)
def test_dpkg_parser_returns_exactly_the_installed_packages(packages) -> None:  # type: ignore[no-untyped-def]
    text = ""
    for name, (version, installed, source) in packages.items():
        status = "install ok installed" if installed else "deinstall ok config-files"
        text += f"Package: {name}\nStatus: {status}\nPriority: optional\n"
        if source:
            text += f"Source: {source} ({version})\n"
        text += f"Version: {version}\nDescription: x\n multi-line\n .\n more\n\n"
    result = parse_dpkg(text.encode(), "var/lib/dpkg/status", "sha256:l", DEBIAN_12)
    assert {(c.name, c.version, c.source_name) for c in result.components} == {
        (name, version, source or name)
        for name, (version, installed, source) in packages.items()
        if installed
    }
    assert result.warnings == []


@given(packages=st.dictionaries(NAME, st.tuples(VERSION, NAME), max_size=8))
def test_apk_parser_returns_every_package_with_its_origin(packages) -> None:  # type: ignore[no-untyped-def]
    text = "".join(
        f"C:Q1abc=\nP:{n}\nV:{v}\nA:x86_64\no:{o}\nF:usr/bin\nR:{n}\n\n" for n, (v, o) in packages.items()
    )
    result = parse_apk(text.encode(), "lib/apk/db/installed", "sha256:l", None)
    assert {(c.name, c.version, c.source_name, c.ecosystem) for c in result.components} == {
        (n, v, o, "Alpine") for n, (v, o) in packages.items()
    }


@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_os_package_parsers_never_crash(data: bytes) -> None:
    for parser in (parse_dpkg, parse_apk):
        with contextlib.suppress(ParseError):
            parser(data, "x", "sha256:l", None)
